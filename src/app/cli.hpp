#pragma once

namespace hearth::app {

/// The `hearth` command line: serve, config default, config check, --version. Returns the exit
/// code: 0 on success, 1 on invalid configuration or a startup failure, 2 on a usage error.
int run_cli(int argc, char** argv);

}  // namespace hearth::app
