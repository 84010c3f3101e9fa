"""The `fer` Python package (OpenCV Haar cascade + its mini-Xception), the peer of `fer predict`
on photos. A measuring tool, not part of the project; `cargo xtask bench photos` runs it.

  python fer_package_peer.py FILE_OR_DIR...

Loads the detector and model once, then for every image file (folders searched recursively,
sorted): cv2.imread, FER.detect_emotions. Prints one JSON object on its last line: images,
faces, seconds spent on the images (model already loaded) and seconds to load.
"""

import json
import os
import sys
import time

start = time.perf_counter()
import cv2  # noqa: E402
from fer.fer import FER  # noqa: E402

detector = FER(mtcnn=False)
loaded = time.perf_counter() - start

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
files = []
for arg in sys.argv[1:]:
    if os.path.isdir(arg):
        for root, _, names in os.walk(arg):
            files.extend(os.path.join(root, n) for n in names if n.lower().endswith(EXTENSIONS))
    else:
        files.append(arg)
files.sort()

faces = 0
begin = time.perf_counter()
for path in files:
    image = cv2.imread(path)
    if image is None:
        continue
    faces += len(detector.detect_emotions(image))
seconds = time.perf_counter() - begin
print(json.dumps({"images": len(files), "faces": faces, "seconds": seconds, "load_seconds": loaded}))
