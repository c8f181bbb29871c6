/* tests/ml_tuner: code the SLP vectorizer shrinks at -Oz on aarch64 (clang -Oz runs it; opt's
   default<Oz> does not), so the tuner's floor must include it to equal real clang -Oz. */
typedef struct { int x, y, z, w; } vec4;

void vec4_add(vec4 *restrict out, const vec4 *a, const vec4 *b)
{
    out->x = a->x + b->x;
    out->y = a->y + b->y;
    out->z = a->z + b->z;
    out->w = a->w + b->w;
}

void vec4_scale(vec4 *restrict out, const vec4 *a, int k)
{
    out->x = a->x * k;
    out->y = a->y * k;
    out->z = a->z * k;
    out->w = a->w * k;
}
