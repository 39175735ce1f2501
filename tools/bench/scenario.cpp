#include "bench/scenario.hpp"

namespace hearth::bench {

namespace {
// A function-local static: registrations run during static initialisation, in any order of
// translation units, and must find the vector constructed.
std::vector<ScenarioInfo>& registry() {
    static std::vector<ScenarioInfo> all;
    return all;
}
}  // namespace

const std::vector<ScenarioInfo>& scenarios() {
    return registry();
}

RegisterScenario::RegisterScenario(ScenarioInfo info) {
    registry().push_back(std::move(info));
}

}  // namespace hearth::bench
