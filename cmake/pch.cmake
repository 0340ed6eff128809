# Precompiled headers for the Asio/Beast-heavy targets (issue #13: cold build time). Each target
# gets its own PCH (their compile definitions differ), built once per target.
# CLERK_PCH=OFF turns it off (e.g. to check that every file includes what it uses).
option(CLERK_PCH "precompile the Asio/Beast headers of the heavy targets" ON)

function(clerk_net_pch target)
  if(CLERK_PCH)
    target_precompile_headers(${target} PRIVATE "${PROJECT_SOURCE_DIR}/cmake/net_pch.hpp")
  endif()
endfunction()
