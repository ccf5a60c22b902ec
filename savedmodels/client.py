"""A small REST client for an SFOCUS model served by TensorFlow Serving.

    python savedmodels/client.py --server=http://localhost:8501 \
        --model=fashion_mnist_demo --signature=attention shirt.png [more.png ...]
    python savedmodels/client.py --dry_run image.png     # print the request only

Sends raw uint8 pixels (the SavedModel resizes and normalises inside its graph);
all images of one request must have the same size. Needs numpy and Pillow only.
"""

import argparse
import json
import sys
import urllib.request

import numpy as np
from PIL import Image


def load_images(paths, channels):
    mode = "L" if channels == 1 else "RGB"
    images = [np.asarray(Image.open(p).convert(mode), dtype=np.uint8) for p in paths]
    if len({image.shape for image in images}) != 1:
        sys.exit("client: all images of one request must have the same size")
    batch = np.stack(images)
    return batch[..., None] if channels == 1 else batch


def request_body(images, signature, columnar):
    if columnar:  # {"inputs": {"images": [B, H, W, C]}} -> {"outputs": {...}}
        return {"signature_name": signature, "inputs": {"images": images.tolist()}}
    # Row format: one entry per image -> {"predictions": [{...}, ...]}
    return {"signature_name": signature, "instances": images.tolist()}


def post(server, model, body):
    url = f"{server.rstrip('/')}/v1/models/{model}:predict"
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG)")
    parser.add_argument("--server", default="http://localhost:8501")
    parser.add_argument("--model", default="fashion_mnist_demo")
    parser.add_argument("--signature", default="serving_default",
                        choices=["serving_default", "attention"])
    parser.add_argument("--channels", type=int, default=1, choices=[1, 3])
    parser.add_argument("--columnar", action="store_true", help='send {"inputs": ...}')
    parser.add_argument("--dry_run", action="store_true", help="print the request only")
    args = parser.parse_args()
    body = request_body(load_images(args.images, args.channels), args.signature,
                        args.columnar)
    if args.dry_run:
        print(json.dumps(body)[:2000])
        return
    try:
        result = post(args.server, args.model, body)
    except OSError as error:  # URLError, HTTPError, timeouts
        sys.exit(f"client: {args.server}: {error}")
    rows = result.get("predictions") or [dict(zip(result["outputs"], values)) for values in
                                         zip(*result["outputs"].values())]
    for path, row in zip(args.images, rows):
        if args.signature == "serving_default":
            print(f"{path}: classes {row['classes']} scores "
                  f"{[round(s, 4) for s in row['scores']]}")
        else:
            print(f"{path}: looks at class {row['target_class']} "
                  f"(p={row['target_score']:.3f}), confuses it with "
                  f"{row['confusing_class']} (p={row['confusing_score']:.3f}); "
                  f"map {np.asarray(row['target_map']).shape}")


if __name__ == "__main__":
    main()
