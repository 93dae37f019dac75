#!/usr/bin/env bash
# Deployment table: the resnet_9blocks teacher vs the GAN Compression student at 256x256 on this CPU, in
# eager PyTorch fp32, ONNX Runtime fp32/int8 and OpenVINO fp32/int8, all timed interleaved in one process.
# Run after benchmarks/gan_compression.py (it reuses that benchmark's models and data); writes
# benchmarks/results/deploy.md and benchmarks/results/deploy/ (bench.json, bench.md, bench.png).
set -euo pipefail
work=${WORK:-benchmarks/work}
ganslim=${GANSLIM:-.venv/bin/ganslim}
teacher=$(ls "$work"/runs/*-pix2pix-teacher/generator.pt | tail -n 1)
student=$(ls "$work"/runs/*-gan-compression-gan-compression/generator.pt | tail -n 1)
command=("$ganslim" bench "teacher=$teacher" "student=$student" --backends torch,onnxruntime,openvino,int8
         --data "$work/data/shapes2render" --size 256 --threads 2 --repeats 20 --out benchmarks/results/deploy)
"${command[@]}"
{
  printf '# deploy\n\nMade by `bash benchmarks/deploy.sh`, which ran `%s`.\n\n' "${command[*]}"
  cat benchmarks/results/deploy/bench.md
} > benchmarks/results/deploy.md
echo "wrote benchmarks/results/deploy.md"
