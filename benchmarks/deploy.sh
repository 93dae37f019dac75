#!/usr/bin/env bash
# Deployment table: the resnet_9blocks teacher vs the GAN Compression student on this CPU, in eager PyTorch
# fp32, ONNX Runtime fp32/int8 and OpenVINO fp32/int8, all timed interleaved in one process.
# Run after benchmarks/gan_compression.py (it reuses that benchmark's models and data). Twice: at 256x256 for
# speed, and at 64x64, the size the models were trained at, for quality (at 256 the inputs are the 64-px
# images upscaled, which the models never saw). Writes benchmarks/results/deploy.md and
# benchmarks/results/deploy/{256,64}/ (bench.json, bench.md, bench.png).
set -euo pipefail
work=${WORK:-benchmarks/work}
ganslim=${GANSLIM:-.venv/bin/ganslim}
teacher=$(ls "$work"/runs/*-pix2pix-teacher/generator.pt | tail -n 1)
student=$(ls "$work"/runs/*-gan-compression-gan-compression/generator.pt | tail -n 1)
{
  printf '# deploy\n\nMade by `bash benchmarks/deploy.sh`. Read speed from the 256x256 table and quality from '
  printf 'the 64x64 one: the models were trained on 64-px images, and at 256x256 their inputs are those images '
  printf 'upscaled.\n'
} > "$work/deploy.md"
for size in 256 64; do
  command=("$ganslim" bench "teacher=$teacher" "student=$student" --backends torch,onnxruntime,openvino,int8
           --data "$work/data/shapes2render" --size "$size" --threads 2 --repeats 20
           --out "benchmarks/results/deploy/$size")
  "${command[@]}"
  {
    printf '\n## %sx%s\n' "$size" "$size"
    sed 1d "benchmarks/results/deploy/$size/bench.md"
  } >> "$work/deploy.md"
done
mv "$work/deploy.md" benchmarks/results/deploy.md
echo "wrote benchmarks/results/deploy.md"
