"""Makes tests/fixtures/train_data/: a tiny 3-class image dataset for the train-head tests.

Each class is random crops (random size 45-90 % of the shorter side, random position,
random horizontal flip) of one of the bundled sample photos (assets/images, scikit-image
sample data, CC0 / public domain), resized to 96x96 and saved as JPEG quality 85.
Needs Pillow and numpy. Usage: python scripts/make_train_data.py [OUT_DIR [PER_CLASS]]
(a larger set for timing: python scripts/make_train_data.py /tmp/train300 100)
"""
import os
import sys
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "train_data")
CLASSES = {"cat": "chelsea.jpg", "coffee": "coffee.jpg", "rocket": "rocket.jpg"}
PER_CLASS = int(sys.argv[2]) if len(sys.argv) > 2 else 20

rng = np.random.default_rng(20241125)
for name, src in CLASSES.items():
    img = Image.open(os.path.join(ROOT, "assets", "images", src)).convert("RGB")
    w, h = img.size
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for i in range(PER_CLASS):
        s = int(min(w, h) * rng.uniform(0.45, 0.9))
        x = int(rng.integers(0, w - s + 1))
        y = int(rng.integers(0, h - s + 1))
        crop = img.crop((x, y, x + s, y + s)).resize((96, 96), Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop.save(os.path.join(d, f"{name}_{i:02d}.jpg"), quality=85)
print("wrote", OUT)
