// libFuzzer target: the shared cache's entry decoder (core/shared_entry, docs/reference.md §15).
//
// Input: a Redis value. Decoded twice: as it is (whatever Redis holds: must be refused unless its
// MAC is right, and never crash), and sealed with the right MAC (so the payload parser behind
// the MAC is reached: a value written by a proxy of another version). A decoded entry must be
// unexpired, a positive one must survive encode -> decode with the same identity.
#include "core/shared_entry.hpp"
#include "fuzz/fuzz_util.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

using clerk::fuzz::check;
namespace core = clerk::core;
constexpr long long now = 1'800'000'000'000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const core::shared_entry_codec codec("sk_test_fuzz", "p:");
    static const std::string key = codec.key_for("mt_fuzz");
    const std::string_view input = clerk::fuzz::as_view(data, size);

    core::shared_entry_codec::entry e;
    const auto raw = codec.decode(key, input, now, e);
    if (raw == core::shared_entry_codec::decode_status::ok) {
        // Only a value with the right MAC over this key decodes; the fuzzer cannot forge one
        // except by sealing (below), so this is effectively unreachable.
        check(input.size() >= 64, "an accepted value carries a MAC");
    }
    const auto sealed = codec.seal(key, input);
    const auto st = codec.decode(key, sealed, now, e);
    if (st != core::shared_entry_codec::decode_status::ok) {
        check(!e.id || st == core::shared_entry_codec::decode_status::ok,
              "a refused entry yields no identity");
        return 0;
    }
    check(e.until_ms > now, "a decoded entry is unexpired");
    if (e.id) {
        check(!e.id->expires_at_ms || *e.id->expires_at_ms > now, "its token is unexpired");
        const auto again = codec.encode_positive(key, *e.id, e.until_ms);
        core::shared_entry_codec::entry e2;
        check(codec.decode(key, again, now, e2) == core::shared_entry_codec::decode_status::ok &&
                  e2.id && e2.id->who->subject == e.id->who->subject &&
                  e2.id->token_id == e.id->token_id && e2.id->who->scopes == e.id->who->scopes,
              "a positive entry round-trips");
    } else {
        check(!e.negative_reason.empty(), "a negative entry has a reason");
    }
    return 0;
}
