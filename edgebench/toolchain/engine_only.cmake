# Included by CMake right after llama.cpp's own project() call (CMAKE_PROJECT_llama.cpp_INCLUDE, set by
# edgebench/toolchain/llama_cpp_wheel.py when it builds llama-cpp-python).
#
# llama-cpp-python forces LLAMA_BUILD_COMMON ON in the cache, so every build compiles llama.cpp's common
# library (chat templates, JSON, an HTTP client: a third of the build) although the Python package never
# loads it: it loads libllama and libggml*, and only llama.cpp's own tools link common. A normal variable
# shadows the cache entry in llama.cpp's directory scope, and its option() keeps it (policy CMP0077), so
# common is neither built nor installed.
set(LLAMA_BUILD_COMMON OFF)
