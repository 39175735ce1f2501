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

# hearth_configure_target(<target> [LAYER <directory under src/>]): warnings and include roots for
# a target of ours. `include/` (the public interfaces) is on every target's path. A layer's target
# (LAYER core, LAYER frontends/native) also gets an include root of its own that holds only its
# directory, exported PUBLIC: a target sees its own headers and those of the layers it links
# (through their PUBLIC links, transitively), and `#include "frontends/homestead/codec.hpp"` in
# another front-end fails to compile, as does any include of a layer not linked. The compiler so
# enforces what the links allow; scripts/check_layers.py holds the links to docs/architecture.md.
# The root is a directory in the build tree with one symbolic link, e.g.
# layer-include/hearth_core/core -> src/core: the sources keep their `"core/config.hpp"`
# spelling, and nothing is copied that could go stale. (The alternative, a directory
# src/<layer>/include/<layer>/ per layer, would move every header for the same effect.)
function(hearth_configure_target target)
    cmake_parse_arguments(ARG "" "LAYER" "" ${ARGN})
    target_compile_options(${target} PRIVATE ${HEARTH_WARNINGS})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/include)
    if(ARG_LAYER)
        set(directory ${PROJECT_SOURCE_DIR}/src/${ARG_LAYER})
        if(NOT IS_DIRECTORY ${directory})
            message(FATAL_ERROR "${target}: layer directory ${directory} does not exist")
        endif()
        set(root ${PROJECT_BINARY_DIR}/layer-include/${target})
        get_filename_component(parent ${root}/${ARG_LAYER} DIRECTORY)
        file(MAKE_DIRECTORY ${parent})
        file(CREATE_LINK ${directory} ${root}/${ARG_LAYER} SYMBOLIC)
        target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${root}>)
    endif()
endfunction()

# hearth_layer_includes(<target> <layer target>...): the include roots a target linking these
# layers would see, without linking them (the fuzz targets compile the sources under test instead).
function(hearth_layer_includes target)
    foreach(layer ${ARGN})
        target_include_directories(${target} PRIVATE
            "$<FILTER:$<TARGET_PROPERTY:${layer},INTERFACE_INCLUDE_DIRECTORIES>,INCLUDE,/layer-include/>")
    endforeach()
endfunction()
