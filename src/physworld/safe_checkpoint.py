"""Loading a checkpoint without running anything in it.

A `.ckpt` file is a zip archive holding one pickle (`<archive>/data.pkl`) and the tensors' bytes. Unpickling
calls whatever importable function the pickle names (a GLOBAL opcode, then REDUCE), so a crafted file runs
code the moment it is loaded. Every checkpoint physworld reads goes through `load_checkpoint_file`, which has
two guards, both before any object is built:

0. Every member of the zip is read against the CRC-32 the zip stores for it (`ZipFile.testzip`): a flipped
   byte in the weights is refused with one line, not loaded and used.
1. The pickle is disassembled statically (`pickletools.genops` parses, it never executes) and every global it
   names must be in ALLOWED_GLOBALS, the types physworld's checkpoints hold. Anything else is refused with one
   line naming the file and the global.
2. The file is then read by `torch.load(weights_only=True)`, torch's restricted unpickler, with nothing added
   to its allowlist.

What physworld writes fits: hyperparameters are plain dicts (phases/base.py), the random states are ints,
tuples and tensors (callbacks/faults.py), Lightning's loop, optimiser and callback states are plain values
and tensors.

Weights made elsewhere (the LPIPS metric's AlexNet and linear layers, physworld/metrics/lpips.py) are read by
`load_weights_file` with the same two guards. It also takes torch's format before 1.6, which some published
weights still use: no zip, five pickles in a row (magic number, protocol version, system info, the object,
its storage keys), then the raw storages; each of the five is checked like the zip's one pickle.
"""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from pathlib import Path

import torch

from physworld.errors import CheckpointError

# Storage types a tensor of each dtype physworld may save (float32 weights, bf16/fp16 under mixed precision,
# int64 counters, bool flags, uint8 random states) is pickled with.
_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
ALLOWED_GLOBALS = frozenset(
    {
        "collections.OrderedDict",  # every state_dict
        "torch._utils._rebuild_tensor_v2",  # every tensor
        *(f"torch.{name}Storage" for name in _STORAGES),
    }
)
ACCEPTED = "tensors, state dicts and plain values (numbers, strings, lists, tuples, dicts)"

# Opcodes that push one string (a candidate module or name for STACK_GLOBAL), that read the memo, and that
# import an object by name.
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING"}
_STRING_OPS |= {"SHORT_BINSTRING"}
_MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_EXTENSIONS = {"EXT1", "EXT2", "EXT4"}


def pickled_globals(data: bytes) -> list[str]:
    """Every global the pickle `data` would import, read without unpickling it: `module.name` for a GLOBAL
    opcode (the protocol-2 pickles torch.save writes name every import so), and for the other importing
    opcodes, which torch.save never writes, the opcode after a best guess at the name (`os.system
    (STACK_GLOBAL)`, `<computed> (STACK_GLOBAL)`, `<extension N> (EXT1)`). Those never match ALLOWED_GLOBALS,
    so they are refused whatever they would import: STACK_GLOBAL takes its operands from the stack, which a
    static read can only guess."""
    found: list[str] = []
    pushed: list[str | None] = []  # what the latest pushing opcodes pushed (strings, else None)
    memo: dict[int, str | None] = {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name == "GLOBAL":
            found.append(str(arg).replace(" ", "."))
        elif name == "INST":
            found.append(f"{str(arg).replace(' ', '.')} (INST)")
        elif name == "STACK_GLOBAL":
            module, attr = pushed[-2:] if len(pushed) >= 2 else (None, None)
            found.append(
                f"{module}.{attr} (STACK_GLOBAL)" if module and attr else "<computed> (STACK_GLOBAL)"
            )
        elif name in _EXTENSIONS:
            found.append(f"<extension {arg}> ({name})")
        # Follow the strings pushed last: STACK_GLOBAL's operands in the pickles Python writes (a name for the
        # message only; refusing it does not depend on the guess).
        if name in _STRING_OPS:
            pushed.append(str(arg))
        elif name in _MEMO_PUTS:
            memo[arg] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in _MEMO_GETS:
            pushed.append(memo.get(arg))
        elif op.stack_after:
            pushed.append(None)
    return found


def check_pickle(path: Path, key: str) -> None:
    """Raise CheckpointError unless `path` is a torch.save zip whose members match their CRC-32 and whose pickle
    names only ALLOWED_GLOBALS."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith(".pkl")]
            if len(pickles) != 1 or not pickles[0].endswith("/data.pkl") or len(set(names)) != len(names):
                raise CheckpointError(
                    f"{key}={str(path)!r} is not a readable checkpoint (a torch.save file holds one data.pkl, "
                    f"this one holds {pickles})"
                )
            data = archive.read(pickles[0])
            # Every member's bytes against the CRC-32 the zip stores for it: bytes changed inside a tensor
            # would otherwise load and score without a word.
            bad = archive.testzip()
            if bad is not None:
                raise CheckpointError(
                    f"{key}={str(path)!r} is corrupt: {bad} does not match its stored checksum (CRC-32); use "
                    "another checkpoint of the run (last.ckpt, best.ckpt) or retrain"
                )
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointError(f"{key}={str(path)!r} is not a readable checkpoint ({err})") from None
    try:
        found = pickled_globals(data)
    except ValueError as err:  # pickletools: a malformed or truncated pickle
        raise CheckpointError(f"{key}={str(path)!r} is not a readable checkpoint ({err})") from None
    refused = sorted(set(found) - ALLOWED_GLOBALS)
    if refused:
        raise CheckpointError(
            f"{key}={str(path)!r} holds {', '.join(refused)}, which no physworld checkpoint holds: refused "
            f"without loading it (accepted: {ACCEPTED})"
        )


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch's pre-1.6 format (torch.serialization)
LEGACY_PICKLES = 5


def check_legacy_pickles(path: Path, key: str) -> None:
    """Raise CheckpointError unless `path` is in torch's pre-1.6 format and its pickles name only
    ALLOWED_GLOBALS (read with pickletools, which never executes)."""
    found: list[str] = []
    try:
        with open(path, "rb") as file:
            for i in range(LEGACY_PICKLES):
                start = file.tell()
                ops = list(pickletools.genops(file))  # stops after this pickle's STOP opcode
                if i == 0 and not any(arg == LEGACY_MAGIC for _, arg, _ in ops):
                    raise ValueError("no torch.save magic number")
                end = file.tell()
                file.seek(start)
                found += pickled_globals(file.read(end - start))
    except (ValueError, OSError) as err:
        raise CheckpointError(
            f"{key}={str(path)!r} is not a readable weights file (neither a torch.save zip nor torch's older "
            f"format: {err})"
        ) from None
    refused = sorted(set(found) - ALLOWED_GLOBALS)
    if refused:
        raise CheckpointError(
            f"{key}={str(path)!r} holds {', '.join(refused)}, which no weights file holds: refused without "
            f"loading it (accepted: {ACCEPTED})"
        )


def load_weights_file(path: str | Path, key: str) -> dict[str, torch.Tensor]:
    """A state dict (name -> tensor) from a torch.save file, zip or pre-1.6 format, on the CPU, after the static
    check of its pickles and with weights_only=True; CheckpointError (one line, naming `key` and the path) for a
    missing, unreadable or refused file, or one that holds something other than a state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{key}={str(path)!r}: no such weights file")
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        check_pickle(path, key)
    else:
        check_legacy_pickles(path, key)
    try:
        # mmap: a zip's tensors are read only when used (torchvision's AlexNet file is mostly its classifier)
        weights = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{key}={str(path)!r} is not a readable weights file ({first})") from None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(
            f"{key}={str(path)!r} is not a state dict of tensors (it holds a {type(weights).__name__})"
        )
    return weights


def load_checkpoint_file(path: str | Path, key: str, map_location="cpu") -> dict:
    """torch.load a checkpoint after `check_pickle`, with weights_only=True; CheckpointError (one line, naming
    `key` and the path) for a missing, unreadable or refused file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{key}={str(path)!r}: no such checkpoint file")
    check_pickle(path, key)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{key}={str(path)!r} is not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"{key}={str(path)!r} is not a Lightning checkpoint (it holds a {type(ckpt).__name__})"
        )
    return ckpt
