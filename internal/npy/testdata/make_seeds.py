"""Writes the .npy files in this folder with NumPy.

Run from this folder with /usr/bin/python3 make_seeds.py (Debian's
python3-numpy 1.24.2). The files are test cases of internal/npy and the seed
corpus of FuzzRead. Values are small integers divided by powers of two, so
they are exact in float32; npy_test.go checks them."""
import numpy as np

def save(name, a, **kw):
    np.save(name, a, **kw)

f4 = np.float32
save("f4_2d.npy", (np.arange(6, dtype=f4).reshape(2, 3) - 2) / 4)          # [[-0.5,-0.25,0],[0.25,0.5,0.75]]
save("f4_1d.npy", np.arange(5, dtype=f4) * 1.5)                            # [0,1.5,3,4.5,6]
save("f4_0d.npy", np.array(2.5, dtype=f4))                                 # 2.5
save("f4_empty.npy", np.zeros((0, 3), dtype=f4))
save("f4_4d.npy", np.arange(24, dtype=f4).reshape(2, 1, 3, 4) / 8)         # i/8
save("f8_3d.npy", np.arange(8, dtype=np.float64).reshape(2, 2, 2) / 2 - 1)  # i/2-1
save("fortran.npy", np.asfortranarray((np.arange(6, dtype=f4).reshape(2, 3))))
save("i8.npy", np.arange(4, dtype=np.int64))
save("f4_bigendian.npy", np.arange(3, dtype=">f4"))
with open("f4_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.arange(4, dtype=f4).reshape(2, 2), version=(2, 0))
data = open("f4_2d.npy", "rb").read()
open("truncated.npy", "wb").write(data[:-5])
open("trailing.npy", "wb").write(data + b"\0\0\0\0")
