"""FITS files written (and read) by astropy, for Quanta's cfitsio layer.

    python astropy_fits.py write DIR   # writes the files below into DIR
    python astropy_fits.py read FILE   # opens a Quanta-written file with checksum verification, prints a summary

Files: image.fits (float32 with NaN, a uint16 extension (int16 + BZERO), checksums), table.fits
(binary table: int64, float32 with 2 NaN of 10, float64, string, a 3-vector column, checksums),
nan_column.fits (a float column entirely NaN), rice.fits (a tile-compressed float image), and
bad_checksum.fits (image.fits with its data changed after the checksums were written).
"""
import sys

import numpy as np
from astropy.io import fits


def write(d):
    img = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    img[0, :3] = np.nan  # 3 of 600 = 0.5 %
    # Unsigned 16-bit: FITS stores it as int16 with BZERO = 32768.
    ext = fits.ImageHDU((np.arange(12 * 8).reshape(12, 8) + 60000).astype(np.uint16), name="COUNTS")
    primary = fits.PrimaryHDU(img)
    primary.header["BAND"] = ("r", "filter band")
    primary.header["VISIT"] = 903334
    primary.header["EXPTIME"] = 30.5
    fits.HDUList([primary, ext]).writeto(f"{d}/image.fits", checksum=True, overwrite=True)

    flux = np.arange(10, dtype=np.float32)
    flux[[2, 5]] = np.nan
    cols = [
        fits.Column(name="id", format="K", array=np.arange(1, 11, dtype=np.int64)),
        fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="mag", format="D", array=np.linspace(18, 22, 10)),
        fits.Column(name="name", format="8A", array=np.array([f"star{i}" for i in range(10)])),
        fits.Column(name="vec", format="3D", array=np.arange(30, dtype=np.float64).reshape(10, 3)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="SOURCES")]).writeto(
        f"{d}/table.fits", checksum=True, overwrite=True)

    allnan = [fits.Column(name="x", format="D", array=np.arange(4.0)),
              fits.Column(name="flux", format="D", array=np.full(4, np.nan))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(allnan, name="SRC")]).writeto(
        f"{d}/nan_column.fits", overwrite=True)

    comp = fits.CompImageHDU(np.random.default_rng(1).normal(100, 5, (64, 64)).astype(np.float32),
                             compression_type="RICE_1", name="COMPRESSED")
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(f"{d}/rice.fits", overwrite=True)

    raw = bytearray(open(f"{d}/image.fits", "rb").read())
    raw[2880 + 100] ^= 0x01
    open(f"{d}/bad_checksum.fits", "wb").write(bytes(raw))


def read(path):
    with fits.open(path, checksum=True) as hdus:
        for i, h in enumerate(hdus):
            shape = "x".join(str(s) for s in (h.data.shape if h.data is not None else ()))
            name = h.name
            nan = 0
            if isinstance(h, fits.BinTableHDU):
                nan = sum(int(np.isnan(h.data[c]).sum()) for c in h.columns.names if h.data[c].dtype.kind == "f")
            elif h.data is not None and h.data.dtype.kind == "f":
                nan = int(np.isnan(h.data).sum())
            print(f"{i} {name} {shape} nan={nan}")


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](sys.argv[2])
