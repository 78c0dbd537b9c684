"""What edgebench builds for itself: the runner zipapp it ships to every device (runner_zipapp.py)
and the llama.cpp engine it installs on this machine (llama_cpp_wheel.py)."""
