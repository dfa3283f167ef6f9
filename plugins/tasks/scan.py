"""SCAN (Lake & Baroni 2018): navigation commands to action sequences, seq2seq.

Data: the 20,910 commands of SCAN's grammar, regenerated exactly here with their action
sequences (no download; the grammar and its interpretation are in the paper, Tables 6-7; the
original release, github.com/brendenlake/SCAN, is BSD-licensed). Commands: primitives
``walk look run jump`` (and ``turn``), directions ``left right``, ``opposite``/``around``,
repetition ``twice``/``thrice``, conjunctions ``and`` (in order) / ``after`` (the second part
first). Actions: ``I_WALK I_LOOK I_RUN I_JUMP I_TURN_LEFT I_TURN_RIGHT``; outputs are 1-48 actions.

Splits (``split`` param):

- ``simple``: a random 80/20 split of all commands (seeded by ``split_seed``; the paper's
  files are one such random split: 16,728 / 4,182);
- ``length``: train on commands whose output has at most 22 actions (16,990), test on the longer
  ones (3,920);
- ``add_jump``: train on every command without ``jump`` (13,203) plus the primitive ``jump`` alone,
  repeated ``jump_repeats`` times (the original training file repeats it 1,467 times: 14,670
  lines); test on every other command containing ``jump`` (7,706).

Validation is carved from the training side (``val_fraction``, seeded; for ``add_jump`` from
the commands without ``jump``), so it is in-distribution: on ``length`` and ``add_jump`` it does
not predict the test score. ``max_train``/``max_val``/``max_test`` take seeded subsets for
small runs.

Anchors (Lake & Baroni 2018, exact-match accuracy % on the test split: their overall-best
seq2seq model, and in brackets the best model for that split): simple 99.7 (99.8); length 13.8
(20.8); add_jump 0.08 (1.2). The harness
reports ``exact_match`` as a share in [0, 1] (0.997 = 99.7 %).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import Field

from harness import Params

from ._seq2seq import Seq2SeqTask
from ._text import SPECIALS, Vocab

PRIMITIVES = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
COMMAND_WORDS = (*PRIMITIVES, "turn", *TURNS, "opposite", "around", "twice", "thrice", "and", "after")
ACTIONS = (*PRIMITIVES.values(), *TURNS.values())
#: the length split's threshold: outputs of at most this many actions are for training
LENGTH_CUTOFF = 22
SIMPLE_TEST_FRACTION = 0.2
ORIGINAL_JUMP_REPEATS = 1467
MAX_COMMAND_LENGTH = 9  # e.g. "jump around left thrice and walk opposite right twice"
MAX_ACTIONS = 48  # "... around ... thrice and/after ... around ... thrice": 24 + 24

SOURCE = (
    "SCAN (Lake & Baroni 2018; original release BSD): all 20,910 commands regenerated exactly from "
    "the grammar with their action sequences. Splits: simple (random 80/20, seeded), length (train on "
    "outputs <= 22 actions: 16,990; test on longer: 3,920), add_jump (train without 'jump' plus "
    "'jump' alone, repeated; test: every other command with 'jump': 7,706). Anchors (exact match %, "
    "overall-best seq2seq model / best for the split): simple 99.7 / 99.8, length 13.8 / 20.8, "
    "add_jump 0.08 / 1.2."
)


def _phrases() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The grammar's V phrases (34) with their meanings: U, U dir, x opposite dir, x around dir."""
    phrases: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
        ((word,), (action,)) for word, action in PRIMITIVES.items()
    ]
    for word in (*PRIMITIVES, "turn"):
        base = () if word == "turn" else (PRIMITIVES[word],)
        for direction, turn in TURNS.items():
            phrases.append(((word, direction), (turn, *base)))
            phrases.append(((word, "opposite", direction), (turn, turn, *base)))
            phrases.append(((word, "around", direction), (turn, *base) * 4))
    return phrases


@functools.lru_cache(maxsize=1)
def scan_commands() -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """Every SCAN command with its action sequence, in a fixed order (20,910 pairs)."""
    singles: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for words, actions in _phrases():
        singles.append((words, actions))
        singles.append(((*words, "twice"), actions * 2))
        singles.append(((*words, "thrice"), actions * 3))
    commands = list(singles)
    for first_words, first in singles:
        for second_words, second in singles:
            commands.append(((*first_words, "and", *second_words), first + second))
            commands.append(((*first_words, "after", *second_words), second + first))
    return tuple(commands)


class ScanParams(Params):
    split: Literal["simple", "length", "add_jump"] = Field(
        "simple", description="simple (random 80/20), length (train <= 22 actions) or add_jump"
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="share of the training side held out for validation (in-distribution)"
    )
    split_seed: int = Field(0, description="seed of the random splits and subsets (fixed across run seeds)")
    jump_repeats: int = Field(
        ORIGINAL_JUMP_REPEATS,
        ge=1,
        description="add_jump only: copies of the command 'jump' in training (original files: 1,467)",
    )
    max_train: int | None = Field(None, ge=1, description="keep at most this many training examples (seeded)")
    max_val: int | None = Field(None, ge=1, description="keep at most this many validation examples (seeded)")
    max_test: int | None = Field(None, ge=1, description="keep at most this many test examples (seeded)")
    target_exact_match: float = Field(
        0.95, gt=0, le=1, description="test exact match that counts as reached (time-to-target)"
    )


def scan_split_indices(
    split: str, val_fraction: float, seed: int, jump_repeats: int = ORIGINAL_JUMP_REPEATS
) -> dict[str, list[int]]:
    """Indices into :func:`scan_commands` for train/val/test (train may repeat ``jump``)."""
    import numpy as np

    commands = scan_commands()
    rng = np.random.default_rng(seed)
    extra: list[int] = []
    if split == "simple":
        order = rng.permutation(len(commands))
        cut = round(SIMPLE_TEST_FRACTION * len(commands))
        test, side = order[:cut], order[cut:]
    elif split == "length":
        long = np.array([len(actions) > LENGTH_CUTOFF for _, actions in commands])
        test, side = np.flatnonzero(long), np.flatnonzero(~long)
    elif split == "add_jump":
        has_jump = np.array(["jump" in words for words, _ in commands])
        jump = commands.index((("jump",), ("I_JUMP",)))
        test = np.array([i for i in np.flatnonzero(has_jump) if i != jump])
        side = np.flatnonzero(~has_jump)
        extra = [jump] * jump_repeats
    else:
        raise ValueError(f"unknown SCAN split {split!r}")
    side = rng.permutation(side)
    n_val = max(1, round(val_fraction * len(side)))
    return {
        "train": sorted(int(i) for i in side[n_val:]) + extra,
        "val": sorted(int(i) for i in side[:n_val]),
        "test": sorted(int(i) for i in test),
    }


class ScanTask(Seq2SeqTask[ScanParams]):
    """SCAN: compositional generalisation from commands to actions (seq2seq, exact match)."""

    name = "scan"
    description = "SCAN commands -> action sequences (Lake & Baroni 2018): simple, length, add_jump splits."
    data_version = "1"
    SOURCE = SOURCE

    def source_vocab(self) -> Vocab:
        return Vocab([*SPECIALS, *COMMAND_WORDS])

    def target_vocab(self) -> Vocab:
        return Vocab([*SPECIALS, *ACTIONS])

    def max_source_length(self) -> int:
        return MAX_COMMAND_LENGTH

    def max_target_length(self) -> int:
        return MAX_ACTIONS

    def target_value(self) -> float:
        return float(self.params.target_exact_match)

    def data_spec(self) -> dict[str, Any]:
        return self.params.model_dump(exclude={"target_exact_match"})

    def split_indices(self) -> dict[str, list[int]]:
        """The indices of each split after the ``max_*`` caps (seeded)."""
        import numpy as np

        p = self.params
        index = scan_split_indices(p.split, p.val_fraction, p.split_seed, p.jump_repeats)
        rng = np.random.default_rng(p.split_seed + 1)
        for split, cap in (("train", p.max_train), ("val", p.max_val), ("test", p.max_test)):
            rows = index[split]
            if cap is not None and cap < len(rows):
                keep = sorted(rng.choice(len(rows), size=cap, replace=False).tolist())
                chosen = [rows[i] for i in keep]
                if p.split == "add_jump" and split == "train" and rows[-1] not in chosen:
                    chosen[-1] = rows[-1]  # keep 'jump' itself: the one command that shows what it means
                index[split] = chosen
        return index

    def build_examples(self) -> dict[str, tuple[list[list[str]], list[list[str]]]]:
        commands = scan_commands()
        return {
            split: ([list(commands[i][0]) for i in rows], [list(commands[i][1]) for i in rows])
            for split, rows in self.split_indices().items()
        }
