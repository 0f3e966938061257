#!/usr/bin/env python3
"""PyTorch/cuDNN streaming reference for `sparkle-run stream`, strict FP32.

Streams BATCHES batches of one convolution from host memory to host memory
the ways a PyTorch user would, and prints milliseconds per batch:
  naive      pageable memory: x.cuda(), conv, .cpu(), one batch at a time
  pinned     pinned memory, one stream, a synchronize per batch
  pipelined  pinned memory, SLOTS slots on SLOTS CUDA streams (the upload
             of one batch overlaps the compute and readback of others)
and the stage times (H2D, compute, D2H, from CUDA events, each measured
alone) with their bound max(H2D, compute, D2H). Data is generated and
pinned before timing; the modes take turns over --rounds and medians are
reported. TF32 is off.

usage: torch_stream.py --shape N,C,H,W --filter K,R,S [--stride S] [--pad P]
                       [--batches 64] [--slots 3] [--rounds 3] [--json FILE]
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def ints(text):
    return [int(v) for v in text.split(',')]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shape', required=True, type=ints)
    ap.add_argument('--filter', required=True, type=ints)
    ap.add_argument('--stride', type=int, default=1)
    ap.add_argument('--pad', type=int, default=0)
    ap.add_argument('--batches', type=int, default=64)
    ap.add_argument('--slots', type=int, default=3)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--json')
    args = ap.parse_args()

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision('highest')
    dev = torch.device('cuda')
    n, c, h, w = args.shape
    k, r, s = args.filter
    conv = dict(stride=args.stride, padding=args.pad)
    weight = torch.randn(k, c, r, s, device=dev)
    ring = min(args.batches, 16)  # distinct inputs, reused round-robin
    xs_pageable = [torch.randn(n, c, h, w) for _ in range(ring)]
    xs_pinned = [x.pin_memory() for x in xs_pageable]
    probe = F.conv2d(xs_pinned[0].to(dev), weight, **conv)
    ys_pinned = [torch.empty(probe.shape).pin_memory() for _ in range(args.batches)]
    slots = args.slots
    streams = [torch.cuda.Stream() for _ in range(slots)]
    dev_x = [torch.empty(n, c, h, w, device=dev) for _ in range(slots)]
    for _ in range(5):  # cuDNN's algorithm search, clocks
        F.conv2d(dev_x[0], weight, **conv)
    torch.cuda.synchronize()

    def naive():
        for i in range(args.batches):
            y = F.conv2d(xs_pageable[i % ring].to(dev), weight, **conv)
            ys_pinned[i].copy_(y.cpu())

    def pinned():
        for i in range(args.batches):
            x = xs_pinned[i % ring].to(dev, non_blocking=True)
            y = F.conv2d(x, weight, **conv)
            ys_pinned[i].copy_(y, non_blocking=True)
            torch.cuda.synchronize()

    def pipelined():
        for i in range(args.batches):
            slot = i % slots
            with torch.cuda.stream(streams[slot]):
                # In order on the slot's stream: this batch's upload waits
                # for the previous user of dev_x[slot].
                dev_x[slot].copy_(xs_pinned[i % ring], non_blocking=True)
                y = F.conv2d(dev_x[slot], weight, **conv)
                ys_pinned[i].copy_(y, non_blocking=True)
        torch.cuda.synchronize()

    modes = {'naive': naive, 'pinned': pinned, 'pipelined': pipelined}
    per_batch = {m: [] for m in modes}
    for _ in range(args.rounds):
        for name, fn in modes.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            per_batch[name].append((time.perf_counter() - t0) * 1e3 / args.batches)

    def event_ms(fn, repeat=20):
        times = []
        for _ in range(repeat):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        return statistics.median(times)

    y_dev = F.conv2d(dev_x[0], weight, **conv)
    stages = dict(h2d=event_ms(lambda: dev_x[0].copy_(xs_pinned[0], non_blocking=True)),
                  compute=event_ms(lambda: F.conv2d(dev_x[0], weight, **conv)),
                  d2h=event_ms(lambda: ys_pinned[0].copy_(y_dev, non_blocking=True)))
    stages['bound'] = max(stages.values())
    report = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                  cudnn=torch.backends.cudnn.version(), tf32=False, shape=args.shape,
                  filter=args.filter, stride=args.stride, pad=args.pad, batches=args.batches,
                  slots=slots, rounds=args.rounds,
                  ms_per_batch={m: statistics.median(v) for m, v in per_batch.items()},
                  rounds_ms=per_batch, stages_ms=stages)
    print(f"# {report['gpu']}, torch {report['torch']}, cuDNN {report['cudnn']}, strict FP32")
    print(f"shape {args.shape} filter {args.filter} pad {args.pad}, {args.batches} batches, "
          f"{slots} slots, {args.rounds} rounds (medians)")
    for m, v in report['ms_per_batch'].items():
        print(f"{m:<10} {v:9.3f} ms/batch  {v / stages['bound']:6.2f}x bound")
    print("stages: H2D %.3f  compute %.3f  D2H %.3f  bound %.3f ms" %
          (stages['h2d'], stages['compute'], stages['d2h'], stages['bound']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
