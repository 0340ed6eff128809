# Warnings on our own code only (third-party headers are SYSTEM includes). They are errors only
# with CLERK_WERROR=ON, which the project's own builds turn on (scripts/build.sh, hence the test
# command and CI): a user's plain `cmake -DCMAKE_BUILD_TYPE=Release` must never fail because a
# newer compiler found something new to say.
option(CLERK_WERROR "treat warnings as errors (the project's dev and CI builds)" OFF)

function(clerk_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic
    -Wshadow -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual
    -Wnull-dereference -Wimplicit-fallthrough -Wformat=2)
  if(CLERK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports false positives inside std/asio coroutine frames, and -Wnull-dereference
    # ones inside Asio's executors and strands once they are inlined (-O2 and more at -O3):
    # clang (the fuzz build) keeps checking -Wnull-dereference.
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized -Wno-mismatched-new-delete
                                             -Wno-null-dereference)
  endif()
endfunction()
