// Loggers follow log.level and log.format, including ones a module first asks for after the
// config was applied (the Redis client's "cache", the HTTP/2 server's "http2").
#include "proxy/logging.hpp"

#include <spdlog/logger.h>
#include <catch2/catch.hpp>

using clerk::proxy::get_logger;
using clerk::proxy::setup_logging;

TEST_CASE("every logger follows log.level, also one created after setup", "[logging]") {
    clerk::config::log_config cfg;
    cfg.level = clerk::config::log_level::warn;
    cfg.format = clerk::config::log_format::text;
    const auto early = get_logger("test_early_module");  // exists before the config is applied
    setup_logging(cfg);
    CHECK(early->level() == spdlog::level::warn);
    CHECK(get_logger("cache")->level() == spdlog::level::warn);
    CHECK(get_logger("http2")->level() == spdlog::level::warn);
    CHECK(get_logger("test_late_module")->level() == spdlog::level::warn);
    CHECK(get_logger("access")->level() == spdlog::level::info);  // switched by access_log

    cfg.level = clerk::config::log_level::error;  // a reload
    setup_logging(cfg);
    CHECK(get_logger("test_late_module")->level() == spdlog::level::err);
    CHECK(early->level() == spdlog::level::err);
    setup_logging(clerk::config::log_config{});
}
