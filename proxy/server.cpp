// TEMPORARY stub, replaced by the data-path work (issue 3).
#include "proxy/server.hpp"

#include <cstdio>

namespace clerk::proxy {

int run_server(std::shared_ptr<const config::config> /*cfg*/) {
    std::fputs("clerk-m2m-proxy: serving is not implemented yet\n", stderr);
    return 1;
}

}  // namespace clerk::proxy
