"""Test-time statistics of half instance normalisation: whole image vs the official grid vs TLC.

HINet trains on crops (256x256 at paper scale) and is tested on larger frames (720x1280 GoPro), so its
instance norms see statistics of a far larger region at test time than in training. This family trains
ONE network per seed (the GoPro preset, HIN on the two deepest encoder levels) and scores every
validation under four test-time treatments, each recorded as its own variant of the same run:

* ``full_image``: the whole image in one pass (the reference);
* ``grid``: the official adaptive-stride grid with tiles of the training crop size (256 at paper scale);
* ``tlc_1x`` / ``tlc_1.5x``: the test-time local converter (Chu et al., ECCV 2022; ``hinet.tlc``) with a
  window of 1x or 1.5x the training crop (1.5x = 384/256, the official HINet-Local setting).

The synthetic default has the mismatch built in: the deblurring proxy trains on 64x64 crops and validates
on 128x128 images (windows of 64 and 96 pixels). Because every treatment scores the same network on the
same images, the paired differences isolate the test-time treatment.

Run: ``nox -s ablate -- --family test_time``.
"""

from hinet.config import PRESETS

TASK = "deblur"
BASE = PRESETS["gopro"]
VARIANTS = {"hinet": BASE}
REFERENCE = "full_image"  # the reference treatment (a label of evaluations())


def evaluations(crop: int) -> tuple[str, ...]:
    """The four treatments for a recipe training on ``crop`` x ``crop`` patches (label=protocol)."""
    return (f"full_image={TASK}/full", f"grid={TASK}/official@{crop}", f"tlc_1x={TASK}/full+tlc{crop}-{crop}",
            f"tlc_1.5x={TASK}/full+tlc{crop * 3 // 2}-{crop}")
