"""Quality on the device, as llama-perplexity measures it: the compact reference a device is sent
(reference_file.py), one scored token against it (token_score.py) and the statistics over all of
them (stats.py). Stdlib only and Python 3.8, like the rest of the runner."""
