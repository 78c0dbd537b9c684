"""`edgebench install-engine`: llama.cpp built with flags that run on this machine, or (`-d DEVICE`)
built for a device and installed in its workdir."""

from __future__ import annotations

from pathlib import Path

from edgebench.cli.common import EXIT_OK, add_devices_dir


def register(commands) -> None:
    install = commands.add_parser(
        "install-engine", help="build and install llama.cpp (llama-cpp-python) with flags that run here",
        description="Build llama-cpp-python once with portable flags (on x86-64: AVX2, no AVX-512, no AMX, "
                    "because some VMs advertise instructions they cannot run) and install it. Only the "
                    "libraries the engine loads are built (no multimodal libmtmd, no llama.cpp common "
                    "library), with the build tools installed here when there are (scikit-build-core, "
                    "CMake: no package index needed for them), else in pip's isolated build environment. "
                    "The wheel is cached per version and flags. Set CMAKE_ARGS to choose other flags (e.g. "
                    "-DGGML_CUDA=ON); --print-flags shows the ones that would be used.")
    install.add_argument("--print-flags", action="store_true", help="print the CMake flags and exit")
    install.add_argument("--print-command", action="store_true",
                         help="print the pip command that builds the engine and exit")
    install.add_argument("-d", "--device", metavar="DEVICE",
                         help="build llama.cpp for this device (its architecture, OS, C library and CPU features, "
                              "from its probe) on this machine, and install llama-bench, llama-perplexity, "
                              "llama-fit-params and the libraries in the device's workdir")
    install.add_argument("--source", type=Path, metavar="DIR",
                         help="with -d: a llama.cpp checkout to build (default: the llama.cpp that the engine "
                              "pins, vendored in llama-cpp-python's source)")
    install.add_argument("--on-device", action="store_true",
                         help="with -d: build llama.cpp on the device itself, with its own cmake and C++ compiler "
                              "(same flags, cached there), where no cross compiler fits")
    add_devices_dir(install)
    install.set_defaults(handler=cmd_install_engine)


def cmd_install_engine(args, console) -> int:
    from edgebench.toolchain import llama_cpp_wheel

    if args.device:
        from edgebench.cli.device_engine import install_on_device
        return install_on_device(args, console)
    if args.source or args.on_device:
        from edgebench.errors import EdgebenchError
        option = "--source" if args.source else "--on-device"
        raise EdgebenchError(f"{option} goes with -d DEVICE: this machine's engine is llama-cpp-python's own build")

    if args.print_flags:
        console.print(llama_cpp_wheel.cmake_args(), markup=False)
        return EXIT_OK
    if args.print_command:
        # print(), not the console: a long command must stay one line that a shell can run
        print(llama_cpp_wheel.shown_command())
        return EXIT_OK
    llama_cpp_wheel.install(log=lambda text: console.print(text, markup=False))
    return EXIT_OK
