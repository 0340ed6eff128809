#include "core/grpc_status.hpp"

#include <catch2/catch.hpp>

using namespace clerk::core;

TEST_CASE("gRPC content types are recognised, look-alikes are not", "[grpc]") {
    CHECK(is_grpc_content_type("application/grpc"));
    CHECK(is_grpc_content_type("application/grpc+proto"));
    CHECK(is_grpc_content_type("application/grpc-web+proto"));
    CHECK(is_grpc_content_type("Application/GRPC; charset=utf-8"));
    CHECK_FALSE(is_grpc_content_type("application/grpcx"));
    CHECK_FALSE(is_grpc_content_type("application/json"));
    CHECK_FALSE(is_grpc_content_type("application/grp"));
    CHECK_FALSE(is_grpc_content_type(""));
}

TEST_CASE("HTTP refusal statuses map to the gRPC codes of the contract", "[grpc]") {
    CHECK(grpc_status_for_http(401) == 16);
    CHECK(grpc_status_for_http(403) == 7);
    CHECK(grpc_status_for_http(503) == 14);
    CHECK(grpc_status_for_http(502) == 14);
    CHECK(grpc_status_for_http(504) == 4);
    CHECK(grpc_status_for_http(400) == 3);
    CHECK(grpc_status_for_http(413) == 8);
    CHECK(grpc_status_for_http(431) == 8);
    CHECK(grpc_status_for_http(500) == 2);
}

TEST_CASE("grpc-message is the error and reason, percent-encoded", "[grpc]") {
    CHECK(grpc_message_for(decision_kind::missing_token, "") == "missing_token");
    CHECK(grpc_message_for(decision_kind::invalid_token, "expired") == "invalid_token: expired");
    CHECK(grpc_percent_encode("100% sure\n\xc3\xa9") == "100%25 sure%0A%C3%A9");
    CHECK(grpc_percent_encode(" ~") == " ~");
}
