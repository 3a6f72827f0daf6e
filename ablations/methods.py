"""HINet against its peers under one recipe: HINet 1x and 0.5x, MPRNet and NAFNet at the widths of their SIDD
tables (MPRNet's denoising network, NAFNet width 64), trained on the same data with the same recipe, seeds and
scenes, and judged by the same verdicts against HINet 1x. A proxy recipe shrinks each by its own rule
(``hinet.models.proxy_network``). Add your own network with ``--model package.module:callable``.

Run: ``nox -s ablate -- --family methods`` (synthetic denoising, proxy scale) or
``nox -s ablate -- --family methods --dataset sidd --data DIR --recipe paper``.
"""

from hinet.models import NETWORKS

TASK = "denoise"
BASE = NETWORKS["sidd-1x"]
REFERENCE = "hinet_1x"
VARIANTS = {
    "hinet_1x": BASE,
    "hinet_0.5x": NETWORKS["sidd-0.5x"],
    "mprnet": NETWORKS["mprnet-sidd"],
    "nafnet": NETWORKS["nafnet-sidd-width64"],
}
