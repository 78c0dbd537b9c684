"""Quality tests on the controller's side: the `quality:` block's reference built once (reference.py),
its text (text.py) and the check that a quant shares the reference's tokenizer (tokenizer.py).
The device's side, stdlib only, is runner/scoring/."""
