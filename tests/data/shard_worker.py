"""Run under torchrun: each rank reads its shard of a demo split and writes the paths it read."""

import json
import os
import sys

from fairseq2 import init_fairseq2
from fairseq2.device import CPU
from fairseq2.gang import ProcessGroupGang, create_parallel_gangs

from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.hub import get_audio_manifest_hub
from aape_plugin.data.reader import AudioReaderOptions
from aape_plugin.data.stats import FeatureStats

if __name__ == "__main__":
    out_dir = sys.argv[1]
    init_fairseq2()
    gangs = create_parallel_gangs(ProcessGroupGang.create_default_process_group(CPU))
    ds = get_audio_manifest_hub().open_dataset("demo_keywords")
    stats = FeatureStats.load(ds.stats_file)
    options = AudioReaderOptions(batch_size=8, num_frames=96, seed=3, num_parallel_calls=1, sync_mode="until_last")
    reader = ds.create_reader("train", gangs, LogMelConfig(), stats, options)
    epochs = []
    for _ in range(2):
        epochs.append([p for group in reader for b in group for p in b.paths])
        reader.reset()
    with open(os.path.join(out_dir, f"rank{gangs.dp.rank}.json"), "w") as f:
        json.dump(epochs, f)
