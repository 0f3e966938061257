#!/usr/bin/env python3
"""`sparkle-run devices` with the amdgpu plugin on the search path: the plugin
loads; without an amdgpu GPU (no /dev/dri, as on CI) it has zero devices and
gives the reason, and every other backend is listed as before. A
SPARKLE_AMDGPU_DEVICE that is not an amdgpu node is a clear error naming the
variable. Usage: devices_cli_test.py SPARKLE_RUN"""
import json
import os
import subprocess
import sys


def devices(run, extra_env):
    env = dict(os.environ, **extra_env)
    out = subprocess.run([run, "devices", "--json"], env=env, capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        sys.exit("sparkle-run devices failed (%d): %s" % (out.returncode, out.stderr))
    return json.loads(out.stdout), out.stderr


def main():
    run = sys.argv[1]
    failures = []

    listing, _ = devices(run, {})
    plugins = {p["name"]: p for p in listing["plugins"] if p["loaded"]}
    if "amdgpu" not in plugins:
        sys.exit("amdgpu plugin not loaded: %s" % listing["plugins"])
    amd = plugins["amdgpu"]
    amd_devices = [d for d in listing["devices"] if d["backend"] == "amdgpu"]
    if not os.path.exists("/dev/dri"):
        if amd_devices:
            failures.append("amdgpu lists devices without /dev/dri: %s" % amd_devices)
        if "no /dev/dri" not in amd["reason"]:
            failures.append("reason does not say there is no /dev/dri: %r" % amd["reason"])
    elif not amd_devices and not amd["reason"]:
        failures.append("zero amdgpu devices and no reason")
    if "cpu" not in plugins or not [d for d in listing["devices"] if d["backend"] == "cpu"]:
        failures.append("the cpu backend is missing next to amdgpu: %s" % listing)

    listing, _ = devices(run, {"SPARKLE_AMDGPU_DEVICE": "/dev/null"})
    amd = [p for p in listing["plugins"] if p["name"] == "amdgpu"][0]
    want = "SPARKLE_AMDGPU_DEVICE=/dev/null is not a DRM device"
    if want not in amd["reason"]:
        failures.append("SPARKLE_AMDGPU_DEVICE=/dev/null: reason %r lacks %r" % (amd["reason"], want))
    if [d for d in listing["devices"] if d["backend"] == "amdgpu"]:
        failures.append("SPARKLE_AMDGPU_DEVICE=/dev/null still lists amdgpu devices")

    listing, _ = devices(run, {"SPARKLE_AMDGPU_DEVICE": "/nonexistent/renderD128"})
    amd = [p for p in listing["plugins"] if p["name"] == "amdgpu"][0]
    if "cannot open (No such file or directory)" not in amd["reason"]:
        failures.append("a missing SPARKLE_AMDGPU_DEVICE is not reported: %r" % amd["reason"])

    # The text listing shows the reason next to the plugin, as for GL.
    text = subprocess.run([run, "devices"], capture_output=True, text=True, timeout=120).stdout
    line = [l for l in text.splitlines() if "libsparkle-amdgpu.so" in l]
    if not line or "[amdgpu " not in line[0]:
        failures.append("text listing lacks the amdgpu plugin: %s" % text)

    for f in failures:
        print("FAIL:", f)
    print("%d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
