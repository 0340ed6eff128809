#pragma once
// The proxy process: listeners, worker threads, signals, reload, drain.
#include "config/config.hpp"

#include <memory>

namespace clerk::proxy {

/// Runs until SIGTERM/SIGINT and a completed drain. Returns the process exit code:
/// 0 clean shutdown, 1 runtime failure (e.g. port in use; one-line reason logged to stderr).
int run_server(std::shared_ptr<const config::config> cfg);

}  // namespace clerk::proxy
