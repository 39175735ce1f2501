#pragma once

#include <cstddef>

#include <hearth/connection.hpp>

namespace hearth::test {

/// What a run of sends came to: the result that ended it and the bytes of the sends accepted.
struct SendRun {
    SendResult last = SendResult::kQueued;
    std::size_t accepted_bytes = 0;
};

/// Calls `send()` (one message of `bytes` bytes, returning its SendResult) until a send is not
/// queued or `most` were: the tests of the outbound bound fill it from another thread this way.
template <class Send>
SendRun send_until_refused(Send&& send, std::size_t bytes, int most = 10'000) {
    SendRun run;
    for (int i = 0; i < most; ++i) {
        run.last = send();
        if (run.last != SendResult::kQueued) {
            break;
        }
        run.accepted_bytes += bytes;
    }
    return run;
}

}  // namespace hearth::test
