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
save("i8.npy", np.arange(4, dtype=np.int64))                               # [0,1,2,3], numpy's default int
save("f4_bigendian.npy", np.arange(3, dtype=">f4"))
# Labels and images as numpy writes them: every integer type, and the values
# that do not fit (float32 holds integers exactly up to 2^24).
save("i4_labels.npy", np.array([3, 1, 4, 1, 5], dtype=np.int32))
save("i2_labels.npy", np.array([2, 7, 1, 8], dtype=np.int16))
save("u2_labels.npy", np.array([9, 0, 65535], dtype=np.uint16))
save("i1_labels.npy", np.array([-1, 0, 127, -128], dtype=np.int8))
save("u4_labels.npy", np.array([4000000000], dtype=np.uint32))
save("u1_images.npy", np.array([[[0, 128, 255], [1, 2, 3]]], dtype=np.uint8))  # shape (1, 2, 3)
save("i8_beyond_f4.npy", np.array([0, 2**24 + 1], dtype=np.int64))
save("u8_beyond_int.npy", np.array([1, 2**63 + 1], dtype=np.uint64))
save("f4_labels.npy", np.array([[0, 2], [1.5, 3]], dtype=f4))                # 1.5 at [1, 0] is no label
save("f8_labels.npy", np.array([0, 9, 2], dtype=np.float64))
save("b1.npy", np.array([True, False]))
save("f2.npy", np.arange(3, dtype=np.float16))
save("i8_bigendian.npy", np.arange(3, dtype=">i8"))
with open("f4_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.arange(4, dtype=f4).reshape(2, 2), version=(2, 0))
data = open("f4_2d.npy", "rb").read()
open("truncated.npy", "wb").write(data[:-5])
open("trailing.npy", "wb").write(data + b"\0\0\0\0")
