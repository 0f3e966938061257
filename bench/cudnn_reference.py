#!/usr/bin/env python3
"""PyTorch/cuDNN reference timings for a sparkle shapes file, strict FP32.

Runs every layer of a shapes file (bench/resnet50_v1_5.shapes format) as
torch.nn.functional.conv2d on the GPU with TF32 off, and prints per-layer
median times, GFLOPS and the network total (sum of ms x count), for each
batch size asked for. Timing uses CUDA events around each call.

usage: cudnn_reference.py SHAPES [--batch 1 32] [--repeat 20] [--warmup 5] [--json FILE]
"""
import argparse
import datetime
import json
import statistics
import sys

import torch
import torch.nn.functional as F


def read_shapes(path):
    layers = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            name = line[0]
            c, h, w, k, r, s, stride, pad, count = (int(v) for v in line[1:10])
            layers.append(dict(name=name, c=c, h=h, w=w, k=k, r=r, s=s, stride=stride, pad=pad,
                               count=count))
    return layers


def out_size(size, r, stride, pad):
    return (size + 2 * pad - r) // stride + 1


def time_layer(layer, batch, repeat, warmup):
    dev = torch.device('cuda')
    x = torch.randn(batch, layer['c'], layer['h'], layer['w'], device=dev, dtype=torch.float32)
    wt = torch.randn(layer['k'], layer['c'], layer['r'], layer['s'], device=dev,
                     dtype=torch.float32)
    args = dict(stride=layer['stride'], padding=layer['pad'])
    for _ in range(warmup):
        F.conv2d(x, wt, **args)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        F.conv2d(x, wt, **args)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    ms = statistics.median(times)
    oh = out_size(layer['h'], layer['r'], layer['stride'], layer['pad'])
    ow = out_size(layer['w'], layer['s'], layer['stride'], layer['pad'])
    flops = 2.0 * batch * layer['k'] * layer['c'] * layer['r'] * layer['s'] * oh * ow
    return ms, flops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('shapes')
    ap.add_argument('--batch', type=int, nargs='+', default=[1, 32])
    ap.add_argument('--repeat', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--json')
    args = ap.parse_args()

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest algorithm per shape
    torch.set_float32_matmul_precision('highest')

    layers = read_shapes(args.shapes)
    report = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                  cudnn=torch.backends.cudnn.version(), tf32=False, results=[])
    print(f"# {report['gpu']}, torch {report['torch']}, cuDNN {report['cudnn']}, strict FP32")
    for batch in args.batch:
        total_ms = total_flops = 0.0
        rows = []
        print(f"\nbatch {batch}\n{'layer':<10} {'count':>5} {'ms':>10} {'GFLOPS':>10}")
        for layer in layers:
            ms, flops = time_layer(layer, batch, args.repeat, args.warmup)
            total_ms += ms * layer['count']
            total_flops += flops * layer['count']
            rows.append(dict(name=layer['name'], count=layer['count'], ms=ms,
                             gflops=flops / (ms * 1e6)))
            print(f"{layer['name']:<10} {layer['count']:>5} {ms:>10.4f} {flops / (ms * 1e6):>10.1f}")
        gflops = total_flops / (total_ms * 1e6)
        print(f"total (sum of ms x count): {total_ms:.3f} ms, {gflops:.1f} GFLOPS, batch {batch}")
        report['results'].append(dict(batch=batch, layers=rows, total_ms=total_ms,
                                      total_gflops=gflops))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
