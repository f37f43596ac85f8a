"""Build a tiny Docker image offline: a rootfs holding a static busybox (Debian's
``busybox-static``, ``/usr/bin/busybox``) with its applet links, imported with ``docker import``.

The quickstart and the examples use it where no registry is reachable (``image: busybox`` then
names this local image); the test suite builds ``agola-test/busybox`` the same way.

    python -m agola.util.busyboximage [IMAGE]      # default busybox:latest; no-op if it exists
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

BUSYBOX_BIN = "/usr/bin/busybox"
DEFAULT_IMAGE = "busybox:latest"

_DIRS = (("bin", 0o755), ("tmp", 0o1777), ("root", 0o700), ("etc", 0o755), ("home", 0o755))
_FILES = (
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/sh\n"),
    ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
)


def rootfs_tar(busybox: str = BUSYBOX_BIN) -> bytes:
    """A tar of a minimal rootfs: /bin/busybox plus applet links, /tmp, /root, /etc/passwd."""
    if not os.path.exists(busybox):
        raise FileNotFoundError(f"{busybox} is missing (Debian: apt-get install busybox-static)")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d, mode in _DIRS:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        for name, text in _FILES:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def ensure_image(image: str = DEFAULT_IMAGE, busybox: str = BUSYBOX_BIN) -> bool:
    """Import ``image`` unless the engine already has it; True when it was built now."""
    if image_exists(image):
        return False
    subprocess.run(
        ["docker", "import", "--change", "ENV PATH=/bin", "--change", 'CMD ["/bin/sh"]', "-", image],
        input=rootfs_tar(busybox), capture_output=True, check=True, timeout=120,
    )
    return True


def main(argv: list[str]) -> int:
    image = argv[0] if argv else DEFAULT_IMAGE
    try:
        built = ensure_image(image)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"cannot build {image}: {exc} {detail.decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    print(f"{image}: {'built from ' + BUSYBOX_BIN if built else 'already present'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
