"""`uniopd ARGS` whose checkpoint writes each pause for a while once the weights are in the
unfinished folder: a test process then has time to signal it mid-write, however fast the disk.
Only the test's process is slowed; the project's code is run unchanged.

    python tests/slow_checkpoint.py SECONDS run EXPERIMENT.yaml"""

from __future__ import annotations

import sys
import time

import transformers

from uniopd.commands.cli import main

PAUSE_S = float(sys.argv.pop(1))
_save = transformers.PreTrainedModel.save_pretrained


def _slow_save(self, save_directory, *args, **kwargs):
    _save(self, save_directory, *args, **kwargs)
    if str(save_directory).endswith(".tmp"):  # a checkpoint, not a merged model
        time.sleep(PAUSE_S)  # a signal arriving now runs its handler at once


transformers.PreTrainedModel.save_pretrained = _slow_save

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
