/*
 * synth_vessels.c - the vessel tree of a synthetic retina. Trunks leave the
 * optic disc (temporal arcades arching around the macula, thinner nasal ones,
 * small macular and radial twigs); each vessel is a random walk whose
 * curvature follows an Ornstein-Uhlenbeck process (tortuosity), is steered
 * towards a target heading and away from the fovea, tapers slowly, and
 * branches at random: the child takes part of the parent's width and the
 * parent narrows by Murray's law (w^3 = w1^3 + w2^3).
 */
#include <math.h>
#include <stdlib.h>

#include "common/error.h"
#include "data/synth_vessels.h"

#define PI 3.14159265358979323846
#define DEG (PI / 180.0)
#define MAX_BRANCHES 4096

typedef struct branch {
    double x, y, theta, w;
    double length;     /* remaining length (px) */
    double target;     /* heading steered towards first */
    double target2;    /* ...and after `turn_after` px */
    double turn_after;
    double steer;      /* fraction of the heading error corrected per px */
    int artery;
} branch;

typedef struct grower {
    const cn_synth_scene *sc;
    cn_rng *rng;
    unsigned char *label;
    float *artery, *vein;
    branch *stack;
    int top;
    double wmin;
} grower;

static double wrap(double a)
{
    while (a > PI) a -= 2 * PI;
    while (a < -PI) a += 2 * PI;
    return a;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Draws the capsule a-b of width w into the label and the opacity buffer. */
static void stamp(grower *g, double ax, double ay, double bx, double by, double w, int artery)
{
    const cn_synth_scene *sc = g->sc;
    float *buf = artery ? g->artery : g->vein;
    double r = w / 2, pad = r + 1.5;
    /* Thin vessels look fainter (partial volume); wide arteries show a central light reflex. */
    double contrast = fmin(1.0, 0.5 + 0.5 * w / (5.0 * sc->scale));
    int reflex = artery && w > 3.5 * sc->scale;
    int x0 = (int)floor(fmin(ax, bx) - pad), x1 = (int)ceil(fmax(ax, bx) + pad);
    int y0 = (int)floor(fmin(ay, by) - pad), y1 = (int)ceil(fmax(ay, by) + pad);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > sc->size - 1) x1 = sc->size - 1;
    if (y1 > sc->size - 1) y1 = sc->size - 1;
    double ex = bx - ax, ey = by - ay, len2 = ex * ex + ey * ey;
    for (int py = y0; py <= y1; py++) {
        for (int px = x0; px <= x1; px++) {
            double qx = px + 0.5 - ax, qy = py + 0.5 - ay;
            double t = len2 > 0 ? clampd((qx * ex + qy * ey) / len2, 0, 1) : 0;
            double d = hypot(qx - t * ex, qy - t * ey);
            double o = clampd(r + 0.5 - d, 0, 1);
            if (o <= 0) continue;
            size_t i = (size_t)py * sc->size + px;
            if (d < r) g->label[i] = 1;
            double core = d < r ? sqrt(1 - (d / r) * (d / r)) : 0;
            o *= contrast * (0.72 + 0.28 * core);
            if (reflex) o *= 1 - 0.45 * exp(-(d / (0.15 * w)) * (d / (0.15 * w)));
            if (o > buf[i]) buf[i] = (float)o;
        }
    }
}

static void push(grower *g, branch b)
{
    if (g->top < MAX_BRANCHES && b.w >= g->wmin) g->stack[g->top++] = b;
}

/* Walks one vessel to its end, pushing the branches it sprouts. */
static void grow(grower *g, branch b)
{
    const cn_synth_scene *sc = g->sc;
    cn_rng *rng = g->rng;
    double s = sc->scale, R = sc->radius;
    double kappa = 0, walked = 0;
    double corr = 20.0 * s;
    double spacing = cn_rng_range(rng, 55.0, 90.0) * s;
    while (b.w >= g->wmin && b.length > 0) {
        double ds = clampd(0.4 * b.w, 0.7, 2.5);
        /* Curvature: mean-reverting noise, stronger for thin vessels. */
        double sigma = (1.0 / (120.0 * s)) * sqrt(2.0 / corr) * sqrt(1.0 + 4.0 * s / b.w);
        kappa += -kappa * ds / corr + sigma * sqrt(ds) * cn_rng_normal(rng);
        double tgt = walked > b.turn_after ? b.target2 : b.target;
        b.theta += kappa * ds + wrap(tgt - b.theta) * fmin(1.0, b.steer * ds);
        /* Keep clear of the fovea: turn away inside 0.3 R, stop inside 0.07 R. */
        double fx = b.x - sc->mx, fy = b.y - sc->my, fd = hypot(fx, fy);
        if (fd < 0.07 * R) break;
        if (fd < 0.3 * R) b.theta += wrap(atan2(fy, fx) - b.theta) * fmin(1.0, ds * (0.3 * R - fd) / (0.3 * R) * 0.04);
        double nx = b.x + cos(b.theta) * ds, ny = b.y + sin(b.theta) * ds;
        if (hypot(nx - sc->cx, ny - sc->cy) > 0.985 * R) break;
        stamp(g, b.x, b.y, nx, ny, b.w, b.artery);
        b.x = nx;
        b.y = ny;
        walked += ds;
        b.length -= ds;
        /* Slow taper; over the last 0.15 R fade out to the minimum width where the length runs out. */
        b.w *= exp(-ds / (3.0 * R));
        if (b.length < 0.15 * R) b.w *= exp(-ds * log(fmax(b.w / (0.9 * g->wmin), 1.0)) / fmax(b.length, ds));
        if (cn_rng_unit(rng) >= ds / spacing) continue;
        double wc = b.w * cn_rng_range(rng, 0.45, 0.85);
        if (wc < g->wmin) continue;
        double side = cn_rng_unit(rng) < 0.5 ? -1.0 : 1.0;
        double angle = b.theta + side * cn_rng_range(rng, 35.0, 75.0) * DEG;
        /* Children head outwards: their course is at most 50 degrees off the ray from the disc. */
        double radial = atan2(b.y - sc->dy, b.x - sc->dx);
        double course = radial + clampd(wrap(angle - radial), -50 * DEG, 50 * DEG);
        /* ...except twigs sprouting towards the fovea, which converge on it. */
        double fovea = atan2(sc->my - b.y, sc->mx - b.x);
        if (fabs(wrap(angle - fovea)) < 60 * DEG && cn_rng_unit(rng) < 0.6) course = fovea;
        branch c = {b.x, b.y, angle, wc, R * cn_rng_range(rng, 0.3, 0.7) * (0.6 + wc / (8.0 * s)), course, course,
                    0, 1.0 / (0.15 * R), b.artery};
        push(g, c);
        b.theta -= side * cn_rng_range(rng, 5.0, 15.0) * DEG * (wc / b.w);
        b.w = fmax(cbrt(b.w * b.w * b.w - wc * wc * wc), 0.6 * b.w);
    }
}

/* A trunk leaving the disc at heading theta. */
static branch trunk(const cn_synth_scene *sc, cn_rng *rng, double theta, double w, double length, int artery)
{
    double a = cn_rng_range(rng, 0, 2 * PI), r = cn_rng_range(rng, 0, 0.3) * sc->disc_r;
    branch b = {sc->dx + r * cos(a), sc->dy + r * sin(a), theta, w, length, theta, theta, 1e9, 0.004 / sc->scale,
                artery};
    return b;
}

clunet_status cn_synth_vessels(const cn_synth_scene *sc, cn_rng *rng, unsigned char *label, float *artery,
                               float *vein)
{
    grower g = {sc, rng, label, artery, vein, malloc(MAX_BRANCHES * sizeof(branch)), 0, fmax(1.0, sc->scale)};
    if (!g.stack) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of memory for a synthetic vessel tree");
    double s = sc->scale, R = sc->radius;
    double temporal = atan2(sc->my - sc->dy, sc->mx - sc->dx);
    for (int side = -1; side <= 1; side += 2) {
        for (int artery_kind = 0; artery_kind < 2; artery_kind++) {
            /* Temporal arcade: up (or down) first, then bending round the macula. */
            double w = artery_kind ? cn_rng_range(rng, 6.5, 8.0) * s : cn_rng_range(rng, 9.0, 11.0) * s;
            double th = temporal + side * cn_rng_range(rng, 60.0, 85.0) * DEG;
            branch b = trunk(sc, rng, th, w, 1.8 * R, artery_kind);
            b.turn_after = cn_rng_range(rng, 0.1, 0.2) * R;
            b.target2 = temporal + side * cn_rng_range(rng, 12.0, 28.0) * DEG;
            b.steer = 1.0 / (0.3 * R);
            push(&g, b);
            /* Nasal trunk: thinner, roughly radial. */
            w = artery_kind ? cn_rng_range(rng, 4.5, 6.0) * s : cn_rng_range(rng, 6.0, 8.0) * s;
            th = temporal + PI - side * cn_rng_range(rng, 30.0, 70.0) * DEG;
            push(&g, trunk(sc, rng, th, w, 1.3 * R, artery_kind));
        }
    }
    /* Small twigs straight from the disc towards the macula and the nasal side. */
    int twigs = 3 + (int)(cn_rng_unit(rng) * 4);
    for (int i = 0; i < twigs; i++) {
        double th = (i % 2 ? temporal : temporal + PI) + cn_rng_range(rng, -30.0, 30.0) * DEG;
        push(&g, trunk(sc, rng, th, cn_rng_range(rng, 2.5, 4.5) * s, cn_rng_range(rng, 0.4, 0.7) * R, i % 3 == 0));
    }
    while (g.top > 0) grow(&g, g.stack[--g.top]);
    free(g.stack);
    return CLUNET_OK;
}
