// What the three winograd_*.comp passes share. The generator prepends the
// transform matrices as constants (WG = G, ALPHA x 3; WBT = B^T, ALPHA x
// ALPHA; WAT = A^T, WINO_M x ALPHA), computed from the interpolation points
// in plugins/opengl/conv2d_kernels.cpp.
#define ALPHA (WINO_M + 2)
#define TILES_H ((OUT_H + WINO_M - 1) / WINO_M)
#define TILES_W ((OUT_W + WINO_M - 1) / WINO_M)
#define P_TILES (IN_N * TILES_H * TILES_W)
