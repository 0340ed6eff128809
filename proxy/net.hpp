#pragma once
// Lean forward declarations and aliases for Asio users in proxy/. Include the heavy Beast
// headers only in .cpp files.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace clerk::proxy {
namespace net = boost::asio;
}  // namespace clerk::proxy
