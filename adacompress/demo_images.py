"""The embedded default image set: real photos that ship inside installed packages.

`make demo` must run on a fresh machine with no dataset; scikit-image and matplotlib carry a few
public-domain photos. Each is also served as two crops, so the set is large enough for a table.
"""

from __future__ import annotations

import matplotlib
from PIL import Image

from adacompress.images import ImageSet, open_image

_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "camera", "clock", "coins")


def demo_photos() -> list[Image.Image]:
    """The bundled photos as RGB images, in a fixed order."""
    import skimage.data

    photos = []
    for name in _SKIMAGE_PHOTOS:
        array = getattr(skimage.data, name)()
        array = array[0] if isinstance(array, tuple) else array
        photos.append(Image.fromarray(array).convert("RGB"))
    photos.append(open_image(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg"))
    return photos


def demo_image_set() -> ImageSet:
    """Each photo whole, plus its left and right 70% crops."""
    images = []
    for photo in demo_photos():
        w, h = photo.size
        crop_w = int(w * 0.7)
        images += [photo, photo.crop((0, 0, crop_w, h)), photo.crop((w - crop_w, 0, w, h))]
    return ImageSet(images)
