#pragma once
// Adapts core::single_flight to Asio coroutines: every concurrent caller for one key awaits
// one shared run of `lead`, without blocking a worker thread.
#include "core/single_flight.hpp"
#include "proxy/net/net.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <utility>

namespace clerk::proxy {

/// Awaits the result of the flight for `key`, from a coroutine on `Executor` (a request's
/// `task` by default). The first caller (the leader) co_spawns `make_lead()`'s awaitable (a
/// `net::awaitable`) on `lead_exec`, detached from its own coroutine, so the flight finishes
/// even if the leader's request goes away; its result is delivered to every caller
/// (leader included) by posting to each caller's own executor. Callers that join later than
/// the completion start a new flight, so `make_lead` should re-check its cache first.
///
/// `make_lead` is called at most once, synchronously, and must return an awaitable that owns
/// everything it uses (capture shared_ptrs by value). If it throws, or its awaitable throws,
/// every caller receives `on_error()`. `sf` must outlive the flight.
template <class Result, class Executor = loop_executor, class Key, class Hash, class MakeLead,
          class OnError>
net::awaitable<Result, Executor> join_flight(core::single_flight<Result, Key, Hash>& sf,
                                             const Key& key, net::any_io_executor lead_exec,
                                             MakeLead make_lead, OnError on_error) {
    auto init = [&](auto handler) {
        using handler_t = decltype(handler);
        auto h = std::make_shared<handler_t>(std::move(handler));
        auto deliver = [h](const Result& r) {
            auto ex = net::get_associated_executor(*h);
            net::post(ex, [h, r]() mutable { std::move (*h)(std::move(r)); });
        };
        if (!sf.join(key, deliver)) {
            return;  // follower: `deliver` runs when the leader completes
        }
        auto run = [](core::single_flight<Result, Key, Hash>* flights, Key k,
                      net::awaitable<Result> work, auto done, auto fail) -> net::awaitable<void> {
            Result r;
            try {
                r = co_await std::move(work);
            } catch (...) {
                r = fail();
            }
            // Forget the flight before the leader's caller can see the result: a caller that
            // reacts to it (retries at once) must start a new flight, not join this one.
            flights->complete(k, r);
            done(r);
        };
        try {
            net::co_spawn(lead_exec, run(&sf, key, make_lead(), deliver, on_error), net::detached);
            return;
        } catch (...) {
            // make_lead() or the spawn failed: complete the flight right here.
        }
        Result r = on_error();
        sf.complete(key, r);
        deliver(r);
    };
    co_return co_await net::async_initiate<const net::use_awaitable_t<Executor>&, void(Result)>(
        init, net::use_awaitable_t<Executor>{});
}

}  // namespace clerk::proxy
