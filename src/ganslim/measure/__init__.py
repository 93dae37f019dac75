"""Measuring generators: :mod:`.profile` (parameters, MACs, memory, timing), :mod:`.evaluate` (FID, KID, PSNR,
SSIM on a dataset split), :mod:`.bench` (models x runtimes side by side) and :mod:`.report` (one HTML page per
run folder). Everything here takes plain ``nn.Module`` generators, never a training loop."""
