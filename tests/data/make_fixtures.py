#!/usr/bin/python3
# make_fixtures.py: builds the small images under tests/data/ used by tests/c/test_image.c,
# with each image's expected decode as raw uint8 HWC bytes and a manifest (fixtures.txt).
# Run from anywhere with Debian's python3 (needs python3-pil): /usr/bin/python3 make_fixtures.py
# Expected pixels come from PIL's own decode (JPEG) or from the source arrays (PNG).
import io, os, struct, zlib
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
rows = []   # manifest: file flag min_w min_h W H C raw tolerance


def out(name):
    return os.path.join(HERE, name)


def expect(src, flag, img, tol, scaled=(0, 0)):
    """Record that decoding 'src' with 'flag' (and a minimum size 'scaled' for DCT scaling)
    must give PIL image 'img' (RGB or L) within 'tol' per channel."""
    raw = src.replace('.', '_') + ('_c' if flag else '_g')
    raw += ('_%dx%d' % scaled if scaled[0] else '') + '.raw'
    data = img.tobytes()
    C = 3 if img.mode == 'RGB' else 1
    assert len(data) == img.size[0] * img.size[1] * C
    open(out(raw), 'wb').write(data)
    rows.append('%s %d %d %d %d %d %d %s %d' % (src, flag, scaled[0], scaled[1], img.size[0],
                                               img.size[1], C, raw, tol))


def gray601(rgb):
    g = Image.new('L', rgb.size)
    g.putdata([(299 * r + 587 * gg + 114 * b + 500) // 1000 for r, gg, b in rgb.getdata()])
    return g


# Raw PNG writer for what PIL cannot write: 16-bit RGB, 2-bit gray, Adam7 interlacing.
def chunk(tag, data):
    return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data))


def raw_png(path, w, h, depth, ctype, rowbytes_of, interlace=False):
    """rowbytes_of(xs, y) returns the packed bytes of the pixels at columns xs of row y."""
    if not interlace:
        passes = [(0, 0, 1, 1)]
    else:   # Adam7: (x0, y0, dx, dy)
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                  (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    idat = b''
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, w, dx))
        if not xs:
            continue
        for y in range(y0, h, dy):
            idat += b'\0' + rowbytes_of(xs, y)
    ihdr = struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 1 if interlace else 0)
    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(idat)) \
        + chunk(b'IEND', b'')
    open(out(path), 'wb').write(png)


def rgb_pattern(w, h):
    im = Image.new('RGB', (w, h))
    im.putdata([(x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * 37 + y * 91) % 256)
                for y in range(h) for x in range(w)])
    return im


# ---- PNG ----
rgb = rgb_pattern(7, 5)
rgb.save(out('rgb.png'))
expect('rgb.png', 1, rgb, 0)
expect('rgb.png', 0, gray601(rgb), 1)

gray = Image.new('L', (6, 4))
gray.putdata([(x * 40 + y * 7) % 256 for y in range(4) for x in range(6)])
gray.save(out('gray.png'))
expect('gray.png', 1, gray.convert('RGB'), 0)
expect('gray.png', 0, gray, 0)

pal = Image.new('P', (5, 3))
pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
pal.putdata([(x + y) % 4 for y in range(3) for x in range(5)])
pal.info['transparency'] = 1   # palette index 1 transparent: a tRNS chunk, alpha to drop
pal.save(out('palette.png'), transparency=1)
expect('palette.png', 1, pal.convert('RGB'), 0)

rgba = Image.new('RGBA', (4, 4))
rgba.putdata([(x * 60, y * 60, 200, (x * 64 + y * 16) % 256) for y in range(4) for x in range(4)])
rgba.save(out('rgba.png'))
expect('rgba.png', 1, rgba.convert('RGB'), 0)   # PIL's RGBA->RGB drops alpha, as OpenCV does

la = Image.new('LA', (3, 2))
la.putdata([(x * 100 + y, 128) for y in range(2) for x in range(3)])
la.save(out('la.png'))
expect('la.png', 0, la.getchannel('L'), 0)

W16, H16 = 5, 3
v16 = lambda x, y, c: (x * 13000 + y * 7000 + c * 20000 + 257) % 65536
raw_png('rgb16.png', W16, H16, 16, 2,
        lambda xs, y: b''.join(struct.pack('>HHH', *(v16(x, y, c) for c in range(3))) for x in xs))
im = Image.new('RGB', (W16, H16))
im.putdata([tuple(v16(x, y, c) >> 8 for c in range(3)) for y in range(H16) for x in range(W16)])
expect('rgb16.png', 1, im, 0)

v2 = lambda x, y: (x + 2 * y) % 4
def pack2(xs, y):
    vals = [v2(x, y) for x in xs] + [0] * 3
    return bytes((vals[i] << 6 | vals[i + 1] << 4 | vals[i + 2] << 2 | vals[i + 3])
                 for i in range(0, len(xs), 4))
raw_png('gray2.png', 6, 3, 2, 0, pack2)
im = Image.new('L', (6, 3))
im.putdata([v2(x, y) * 85 for y in range(3) for x in range(6)])
expect('gray2.png', 0, im, 0)

il = rgb_pattern(11, 9)
raw_png('interlaced.png', 11, 9, 8, 2,
        lambda xs, y: b''.join(bytes(il.getpixel((x, y))) for x in xs), interlace=True)
expect('interlaced.png', 1, il, 0)

# ---- JPEG ----
def jpeg_decode(path, mode):
    im = Image.open(out(path))
    im.draft(mode, im.size)   # have libjpeg produce 'mode' itself, as trl does
    return im.convert(mode) if im.mode != mode else im

photo = rgb_pattern(64, 48)
photo.save(out('photo.jpg'), quality=90)
expect('photo.jpg', 1, jpeg_decode('photo.jpg', 'RGB'), 2)
expect('photo.jpg', 0, jpeg_decode('photo.jpg', 'L'), 2)
im = Image.open(out('photo.jpg'))
im.draft('RGB', (16, 12))   # DCT scaling 1/4, what decode_scaled(min 16 x 12) must pick
assert im.size == (16, 12), im.size
expect('photo.jpg', 1, im.convert('RGB'), 2, scaled=(16, 12))

gj = Image.new('L', (16, 8))
gj.putdata([(x * 16 + y * 8) % 256 for y in range(8) for x in range(16)])
gj.save(out('gray.jpg'), quality=95)
dec = jpeg_decode('gray.jpg', 'L')
expect('gray.jpg', 0, dec, 2)
expect('gray.jpg', 1, dec.convert('RGB'), 2)

cm = Image.new('CMYK', (16, 16))
quad = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 128), (0, 255, 255, 0)]
cm.putdata([quad[(x // 8) + 2 * (y // 8)] for y in range(16) for x in range(16)])
cm.save(out('cmyk.jpg'), quality=95)
dec = Image.open(out('cmyk.jpg'))
assert dec.mode == 'CMYK'
exp = Image.new('RGB', dec.size)
exp.putdata([tuple(((255 - v) * (255 - k) + 127) // 255 for v in (c, m, y))
             for c, m, y, k in dec.getdata()])
expect('cmyk.jpg', 1, exp, 2)

# EXIF orientations 1..8 of a 16 x 8 image with four distinct quadrants; 8 is big-endian.
base = Image.new('RGB', (16, 8))
cols = [(230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30)]
base.putdata([cols[(x // 8) + 2 * (y // 4)] for y in range(8) for x in range(16)])
for o in range(1, 9):
    name = 'orient%d.jpg' % o
    if o == 8:
        tiff = b'MM\0\x2a\0\0\0\x08' + struct.pack('>HHHIHH', 1, 0x0112, 3, 1, o, 0) + b'\0\0\0\0'
    else:
        ex = Image.Exif()
        ex[0x0112] = o
        tiff = ex.tobytes()[6:]
    base.save(out(name), quality=95, exif=b'Exif\0\0' + tiff)
    im = Image.open(out(name))
    assert im.getexif().get(0x0112) == o
    expect(name, 1, ImageOps.exif_transpose(jpeg_decode(name, 'RGB')), 2)

with open(out('fixtures.txt'), 'w') as f:
    f.write('# file flag min_w min_h W H C expected.raw tolerance (from make_fixtures.py)\n')
    f.write('\n'.join(rows) + '\n')
print('wrote %d expectations' % len(rows))
