"""What an engine says about itself, as plain data that the controller and the runner both read.

Each engine module (`<name>_engine.py`) holds a `DECLARATION` beside its engine class:

- `options`: the settings of the profile's `engine:` section it takes, each with a kind, a default,
  what it allows and a line of doc. The controller checks a profile against the chosen engine's
  options only (an option of another engine is an error), and sends them in the job;
- `test_kinds`: the kinds of test it runs (testspec.KINDS), checked by the profile and by the runner;
- `facts`: the options recorded with each cell (`engine_options` in cells.jsonl);
- `row_fields`: the result-row fields (llama-bench's vocabulary) it fills from those facts;
- `compare_keys`: the options, facts or row fields whose difference makes two cells different
  experiments for `compare`;
- `refused_kinds`: kinds of test it could be expected to run and does not, each with the reason the
  profile check gives in its one sentence;
- `quality_text_only`: its quality tests score a text file, which it tokenizes itself, and cannot take
  a token stream (the sampled default, a reference's tokens).

Stdlib only and Python 3.8, like the rest of the runner; nothing here imports an engine's library,
so the controller and a device without it read every declaration.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

# the kinds of value an option holds, as a profile writes them
KINDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "text": "a non-empty string",
    "choice": "one of `choices`, in any case",
    "mask": "a hex CPU mask, like 0xF0 (bit n: CPU n)",
    "texts": "a non-empty list of distinct non-empty strings",
    "sizes": "a mapping of names to positive integers",
    "counts": "a positive integer, or a list of distinct ones that makes a sweep",
}


class Option(NamedTuple):
    name: str
    kind: str  # one of KINDS
    default: Any
    doc: str
    choices: Tuple[str, ...] = ()
    # other YAML values that stand for a choice: YAML 1.1 reads a bare `on`/`off` as a boolean
    aliases: Tuple[Tuple[Any, str], ...] = ()
    at_least: Optional[float] = None
    above: Optional[float] = None
    # the device profile's setting that supplies the value when the benchmark profile leaves it unset
    device_setting: Optional[str] = None


def no_row_fields(facts: dict) -> dict:
    return {}


class EngineDeclaration(NamedTuple):
    name: str
    doc: str
    options: Tuple[Option, ...]
    test_kinds: Tuple[str, ...]
    facts: Tuple[str, ...]
    compare_keys: Tuple[str, ...]
    row_fields: Callable[[dict], dict] = no_row_fields
    refused_kinds: Tuple[Tuple[str, str], ...] = ()
    quality_text_only: bool = False

    def option(self, name: str) -> Optional[Option]:
        return next((o for o in self.options if o.name == name), None)

    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options}


# every engine takes it: the cell plan sweeps over it, whatever the engine does with it
THREADS = Option("threads", "counts", (), "threads; a list makes a sweep; empty: the device's physical cores",
                 at_least=1)
