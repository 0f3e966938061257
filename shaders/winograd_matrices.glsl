// The Winograd transforms of F(2x2, 3x3) and F(4x4, 3x3) (Lavin and Gray,
// interpolation points 0, +-1, +-2 and infinity), included by the three
// winograd_*.comp passes: WG = G (ALPHA x 3), WBT = B^T and WAT = A^T
// (WINO_M x ALPHA), with ALPHA = WINO_M + 2.
#define ALPHA (WINO_M + 2)
#define TILES_H ((OUT_H + WINO_M - 1) / WINO_M)
#define TILES_W ((OUT_W + WINO_M - 1) / WINO_M)
#define P_TILES (IN_N * TILES_H * TILES_W)
#if WINO_M == 2
const float WG[4][3] = float[4][3](float[3](1.0, 0.0, 0.0), float[3](0.5, 0.5, 0.5),
                                   float[3](0.5, -0.5, 0.5), float[3](0.0, 0.0, 1.0));
const float WBT[4][4] = float[4][4](float[4](1.0, 0.0, -1.0, 0.0), float[4](0.0, 1.0, 1.0, 0.0),
                                    float[4](0.0, -1.0, 1.0, 0.0), float[4](0.0, 1.0, 0.0, -1.0));
const float WAT[2][4] = float[2][4](float[4](1.0, 1.0, 1.0, 0.0), float[4](0.0, 1.0, -1.0, -1.0));
#else
const float WG[6][3] = float[6][3](
    float[3](1.0 / 4.0, 0.0, 0.0), float[3](-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0),
    float[3](-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0), float[3](1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0),
    float[3](1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0), float[3](0.0, 0.0, 1.0));
const float WBT[6][6] = float[6][6](
    float[6](4.0, 0.0, -5.0, 0.0, 1.0, 0.0), float[6](0.0, -4.0, -4.0, 1.0, 1.0, 0.0),
    float[6](0.0, 4.0, -4.0, -1.0, 1.0, 0.0), float[6](0.0, -2.0, -1.0, 2.0, 1.0, 0.0),
    float[6](0.0, 2.0, -1.0, -2.0, 1.0, 0.0), float[6](0.0, 4.0, 0.0, -5.0, 0.0, 1.0));
const float WAT[4][6] = float[4][6](float[6](1.0, 1.0, 1.0, 1.0, 1.0, 0.0),
                                    float[6](0.0, 1.0, -1.0, 2.0, -2.0, 0.0),
                                    float[6](0.0, 1.0, 1.0, 4.0, 4.0, 0.0),
                                    float[6](0.0, 1.0, -1.0, 8.0, -8.0, 1.0));
#endif
