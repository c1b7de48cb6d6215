"""Writes the .npy arrays in this folder with NumPy, as users' numpy code does.

Run from this folder with /usr/bin/python3 make_arrays.py (Debian's
python3-numpy 1.24.2). They are the inputs of the audit tests in
cmd/marginaudit: the four images of testdata/models/cnn.x.npy (float32
[4, 1, 28, 28] in (0, 1)) in the layouts and element types users have, and
labels as numpy writes them."""
import numpy as np

x = np.load("../../../../testdata/models/cnn.x.npy")
assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32
np.save("x_nhwc.npy", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))  # [4, 28, 28, 1]
np.save("x_flat.npy", x.reshape(4, -1))                                 # [4, 784]
np.save("x_u8.npy", np.round(x * 255).astype(np.uint8))                 # [4, 1, 28, 28], 0..255
np.save("y.npy", np.array([3, 1, 4, 1]))                                # int64, numpy's default
np.save("y_u8.npy", np.array([3, 1, 4, 1], dtype=np.uint8))
np.save("y_negative.npy", np.array([3, -1, 4, 1]))
np.save("y_fraction.npy", np.array([3, 1.5, 4, 1], dtype=np.float32))
