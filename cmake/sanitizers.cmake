# CLERK_SANITIZE=address  -> ASan + UBSan ; CLERK_SANITIZE=thread -> TSan
if(CLERK_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # clang 14 cannot emit -fsanitize=function's prologue data for split coroutine functions
    # ("error: Cannot represent a difference across sections" in every Asio coroutine TU).
    add_compile_options(-fno-sanitize=function)
  endif()
elseif(CLERK_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  # TSan does not model std::atomic_thread_fence (GCC 12 says so with -Wtsan, an error under
  # -Werror). Asio uses fences in two places: ref_count_down (fetch_sub(release) + an acquire
  # fence, then delete: the any_io_executor holding a strand is freed on another thread, which
  # TSan reports as a race) and fenced_block around handler calls (redundant with the
  # scheduler's and strand's mutexes, which TSan sees). In the TSan build only, Asio uses
  # boost::detail::atomic_count (acq_rel read-modify-writes, which TSan models) and no fenced
  # block, so its hand-offs are visible to TSan instead of suppressed.
  add_compile_definitions(BOOST_ASIO_DISABLE_STD_ATOMIC BOOST_ASIO_DISABLE_FENCED_BLOCK)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-tsan)  # any fence left in other headers: same reason as above
  endif()
elseif(CLERK_SANITIZE)
  message(FATAL_ERROR "CLERK_SANITIZE must be address, thread or empty")
endif()
if(CLERK_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CLERK_FUZZ needs clang (CXX=clang++)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
