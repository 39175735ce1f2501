# Compiler settings for Hearth's own targets. Warnings are errors in our code; third-party headers
# come from /usr/include and are treated as system headers, so they cannot break the build.

# -Wnull-dereference is left out: at -O3 it reports false positives inside inlined libstdc++ code.
set(HEARTH_WARNINGS
    -Wall -Wextra -Wpedantic -Werror
    -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 at -O3 reports impossible sizes inside inlined libstdc++ string code (GCC bugs
    # 105329, 105651): still shown, not fatal. (Clang, used for the fuzz targets, has no such
    # warnings and refuses unknown ones.)
    list(APPEND HEARTH_WARNINGS
         -Wno-error=restrict -Wno-error=stringop-overflow -Wno-error=array-bounds)
endif()

if(HEARTH_SANITIZE)
    set(HEARTH_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
        -fno-sanitize-recover=undefined)
    add_compile_options(${HEARTH_SANITIZER_FLAGS})
    add_link_options(${HEARTH_SANITIZER_FLAGS})
endif()

# ThreadSanitizer cannot be combined with AddressSanitizer. -O1 keeps the instrumented tests within
# a few times their debug run time; the report still names every line. -Wno-tsan: GCC warns that
# TSan does not model std::atomic_thread_fence, which Asio's handler invocation uses
# (std_fenced_block); Asio's queues synchronise with mutexes, which TSan does model.
if(HEARTH_TSAN)
    if(HEARTH_SANITIZE)
        message(FATAL_ERROR "HEARTH_TSAN and HEARTH_SANITIZE exclude each other")
    endif()
    set(HEARTH_TSAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
    add_compile_options(${HEARTH_TSAN_FLAGS} -O1 -Wno-tsan)
    add_link_options(${HEARTH_TSAN_FLAGS})
endif()

# hearth_configure_target(<target>): warnings and include roots for a target of ours.
function(hearth_configure_target target)
    target_compile_options(${target} PRIVATE ${HEARTH_WARNINGS})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
endfunction()
