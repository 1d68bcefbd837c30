/*
 * main.c - the winnow command line. Sub-commands parse their flags here and
 * call into the core; this is the one place that prints errors and picks
 * exit codes (0 success, 1 run/input error, 2 usage or manifest error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/device.h"
#include "cli.h"
#include "energy.h"
#include "manifest.h"
#include "mpi.h"
#include "run.h"
#include "stage.h"

static const char *const usage_main =
    "usage: winnow <command> [options]\n"
    "\n"
    "commands:\n"
    "  run MANIFEST [--resume] [--threads N] [--device D] [--keep-state] [--progress|--no-progress]\n"
    "                          run a pipeline manifest into its run directory\n"
    "  validate MANIFEST       check a manifest (keys, types, ranges, input files) without running it\n"
    "  stages [NAME]           list stages, or show one stage's parameters and defaults\n"
    "  report RUN_DIR [--html FILE|--json|--rejects STAGE]\n"
    "                          the funnel of a run (docs/bytes/tokens per stage, drops, time) in the\n"
    "                          terminal and as an HTML page with charts (RUN_DIR/report.html)\n"
    "  inspect FILE            a shard, shards/index.json (--verify), or a tokenizer, in human form\n"
    "  tokenizer encode|decode|train|info ...\n"
    "                          byte-level BPE: GPT-2 / HF tokenizer.json files, training\n"
    "  train --data GLOB --out DIR [...]   train the bundled GPT-2 model on token shards\n"
    "  experiment MANIFEST     train on the selection vs a random selection of the same size; compare\n"
    "  serve CHECKPOINT --tokenizer PATH [--port N]\n"
    "                          an OpenAI-compatible completions server for a winnow GPT checkpoint\n"
    "  --help, --version\n"
    "\n"
    "Every command takes --help. Manual: README.md.\n";

static const char *const usage_run =
    "usage: winnow run MANIFEST [--resume] [--threads N] [--device D] [--keep-state] [--progress|--no-progress]\n"
    "  --resume       continue a killed run from its last checkpoint (same manifest and inputs);\n"
    "                 the outputs are byte-identical to an uninterrupted run\n"
    "  --threads N    OpenMP threads (overrides the manifest; outputs do not depend on it)\n"
    "  --device D     cpu, cuda or auto: where model work runs (overrides the manifest's device)\n"
    "  --keep-state   keep RUN_DIR/state (checkpoints, spills) after success\n"
    "  --progress     force the progress display (default: only when stderr is a terminal)\n";

static const char *const usage_validate = "usage: winnow validate MANIFEST\n";
static const char *const usage_stages = "usage: winnow stages [NAME]\n";
static const char *const usage_report =
    "usage: winnow report RUN_DIR [--html FILE | --no-html | --json | --rejects STAGE]\n"
    "  prints the funnel (documents, bytes, tokens in/out per step, drop reasons, wall seconds, MB/s)\n"
    "  and writes a self-contained HTML page with charts, RUN_DIR/report.html by default\n"
    "  --html FILE      write the HTML page to FILE instead\n"
    "  --no-html        only print the funnel\n"
    "  --json           print run.json and every stage report, in order, as one JSON document\n"
    "  --rejects STAGE  print the sampled dropped ids per reason of one stage (name, number or NN-name)\n";

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

static int fail(wn_err e, const wn_errbuf *err)
{
    fprintf(stderr, "winnow: %s\n", err->msg[0] ? err->msg : wn_err_name(e));
    if (e == WN_ERR_INPUT)
        fprintf(stderr, "hint: set on_error: skip in the manifest (or on the input) to skip and count bad records\n");
    if (e == WN_ERR_MANIFEST) fprintf(stderr, "hint: `winnow stages NAME` lists a stage's parameters\n");
    return e == WN_ERR_MANIFEST || e == WN_ERR_USAGE ? 2 : 1;
}

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "winnow: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int cmd_run(int argc, char **argv)
{
    if (wants_help(argc, argv)) { fputs(usage_run, stdout); return 0; }
    wn_run_opts o = {0, 0, 0, -1, NULL};
    const char *manifest = NULL, *device = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) o.resume = 1;
        else if (!strcmp(argv[i], "--keep-state")) o.keep_state = 1;
        else if (!strcmp(argv[i], "--progress")) o.progress = 1;
        else if (!strcmp(argv[i], "--no-progress")) o.progress = 0;
        else if (!strcmp(argv[i], "--threads")) {
            char *end;
            if (i + 1 >= argc) return usage_error(usage_run, "%s needs a number", argv[i]);
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 4096) return usage_error(usage_run, "--threads: bad value '%s'", argv[i]);
            o.threads = (int)t;
        } else if (!strcmp(argv[i], "--device")) {
            if (i + 1 >= argc) return usage_error(usage_run, "%s needs cpu, cuda or auto", argv[i]);
            device = argv[++i];
            if (strcmp(device, "cpu") && strcmp(device, "cuda") && strcmp(device, "auto"))
                return usage_error(usage_run, "--device: expected cpu, cuda or auto, got '%s'", device);
        } else if (argv[i][0] == '-') return usage_error(usage_run, "unknown option '%s'", argv[i]);
        else if (!manifest) manifest = argv[i];
        else return usage_error(usage_run, "unexpected argument '%s'", argv[i]);
    }
    if (!manifest) return usage_error(usage_run, "%s", "a MANIFEST is required");
    wn_errbuf err = {{0}};
    wn_manifest *m;
    wn_err e = wn_manifest_load(&m, manifest, &err);
    if (e) return fail(e, &err);
    if (device && (e = wn_manifest_set_device(m, device, &err))) {
        wn_manifest_free(m);
        return fail(e, &err);
    }
    e = wn_run(m, &o, &err);
    if (e && wn_mpi_size() > 1) {
        /* the other ranks may wait in an exchange for this one: stop them all */
        fprintf(stderr, "winnow: run: rank %d of %d failed: %s\n", wn_mpi_rank(), wn_mpi_size(), err.msg);
        wn_mpi_abort(1);
    }
    if (!e && wn_mpi_rank() == 0)
        fprintf(stderr, "winnow: done: %s (see `winnow report %s`)\n", m->workdir, m->workdir);
    wn_manifest_free(m);
    return e ? fail(e, &err) : 0;
}

static int cmd_validate(int argc, char **argv)
{
    if (wants_help(argc, argv)) { fputs(usage_validate, stdout); return 0; }
    if (argc != 1) return usage_error(usage_validate, "%s", "exactly one MANIFEST is expected");
    wn_errbuf err = {{0}};
    wn_manifest *m;
    wn_err e = wn_manifest_load(&m, argv[0], &err);
    if (!e && (e = wn_manifest_expand_inputs(m, &err))) wn_manifest_free(m);
    if (e) return fail(e, &err);
    uint64_t bytes = 0;
    for (int i = 0; i < m->n_files; i++) bytes += m->files[i].size;
    printf("%s: ok: %d stage%s, %d input file%s (%.1f MB), run directory %s\n", argv[0], m->n_stages,
           m->n_stages == 1 ? "" : "s", m->n_files, m->n_files == 1 ? "" : "s", (double)bytes / 1e6, m->workdir);
    wn_manifest_free(m);
    return 0;
}

static const char *type_name(wn_ptype t)
{
    static const char *const names[] = {"bool", "int", "float", "string", "enum", "size"};
    return names[t];
}

static int cmd_stages(int argc, char **argv)
{
    if (wants_help(argc, argv)) { fputs(usage_stages, stdout); return 0; }
    if (argc == 0) {
        for (int i = 0; i < wn_stage_count; i++)
            printf("%-16s %s\n", wn_stage_registry[i]->name, wn_stage_registry[i]->summary);
        return 0;
    }
    const wn_stage_def *d = wn_stage_find(argv[0]);
    if (!d) return usage_error(usage_stages, "no stage named '%s' (`winnow stages` lists them)", argv[0]);
    printf("%s: %s\n\n%s\n\nparameters:\n", d->name, d->summary, d->doc);
    for (int i = 0; i < d->n_params; i++) {
        const wn_param_def *p = &d->params[i];
        printf("  %-18s %-6s default %-10s", p->name, type_name(p->type), p->def ? p->def : "(required)");
        if (p->type == WN_P_ENUM) printf(" one of %s", p->choices);
        else if (p->type == WN_P_INT || p->type == WN_P_FLOAT || p->type == WN_P_SIZE)
            printf(" range [%g, %g]", p->min, p->max);
        printf("\n  %18s %s\n", "", p->doc);
    }
    if (!d->n_params) printf("  (none)\n");
    return 0;
}

static int cmd_report(int argc, char **argv)
{
    if (wants_help(argc, argv)) { fputs(usage_report, stdout); return 0; }
    const char *dir = NULL, *html = NULL, *rejects = NULL;
    int json = 0, no_html = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--html") || !strcmp(argv[i], "--rejects")) {
            if (i + 1 >= argc) return usage_error(usage_report, "%s needs an argument", argv[i]);
            const char **into = !strcmp(argv[i], "--html") ? &html : &rejects;
            *into = argv[++i];
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--no-html")) no_html = 1;
        else if (argv[i][0] == '-') return usage_error(usage_report, "unknown option '%s'", argv[i]);
        else if (!dir) dir = argv[i];
        else return usage_error(usage_report, "unexpected argument '%s'", argv[i]);
    }
    if (!dir) return usage_error(usage_report, "%s", "a RUN_DIR is required");
    if ((html != NULL) + no_html + json + (rejects != NULL) > 1)
        return usage_error(usage_report, "%s", "--html, --no-html, --json and --rejects go one at a time");
    wn_errbuf err = {{0}};
    wn_report r;
    wn_err e = wn_report_load(&r, dir, &err);
    if (e) {
        wn_report_free(&r);
        return fail(e, &err);
    }
    if (json) e = wn_report_json(&r, stdout, &err);
    else if (rejects) e = wn_report_rejects(&r, rejects, stdout, &err);
    else e = wn_report_print(&r, stdout, &err);
    if (!e && !json && !rejects && !no_html) {
        char def[4200];
        snprintf(def, sizeof def, "%s/report.html", dir);
        e = wn_report_html(&r, html ? html : def, &err);
        if (!e) printf("\nHTML report: %s\n", html ? html : def);
        else if (!html) { /* the default page is a bonus: a read-only run directory still gets its funnel */
            fprintf(stderr, "winnow: warning: %s (use --html FILE to write it elsewhere)\n", err.msg);
            e = WN_OK;
        }
    }
    wn_report_free(&r);
    fflush(stdout);
    return e ? fail(e, &err) : 0;
}

static int dispatch(int argc, char **argv);

/* Under mpirun with more than one rank, `run` splits the inputs across the
 * ranks and `train` is data-parallel (README "Scale-out (MPI)"); anything
 * else would run N times over the same outputs, so it stops before doing
 * anything. One rank works as before. */
static int refused_under_mpi(const char *cmd)
{
    if (wn_mpi_size() < 2 || !strcmp(cmd, "train") || !strcmp(cmd, "run")) return 0;
    if (wn_mpi_rank() == 0)
        fprintf(stderr, "winnow: %s: not supported under MPI with more than one rank (%d ranks): only "
                        "`winnow run` and `winnow train` run across ranks; run it as one process\n", cmd,
                wn_mpi_size());
    return 1;
}

int main(int argc, char **argv)
{
    if (wn_mpi_init(&argc, &argv)) return 2;
    int rc = argc >= 2 && refused_under_mpi(argv[1]) ? 2 : dispatch(argc, argv);
    wn_mpi_finalize();
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) { fputs(usage_main, stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { fputs(usage_main, stdout); return 0; }
    if (!strcmp(cmd, "--version")) {
        int n = wn_cuda_device_count();
        printf("winnow %s (%s build; %d CUDA device%s visible; %s)\n", WN_VERSION,
               wn_cuda_built() ? "CUDA" : "CPU-only", n, n == 1 ? "" : "s", wn_mpi_built() ? "with MPI" : "no MPI");
        for (int i = 0; i < n; i++) {
            char desc[256];
            if (!wn_cuda_device_describe(i, desc, sizeof desc)) printf("  cuda:%d %s\n", i, desc);
        }
        uint64_t mj;
        if (n > 0 && wn_energy_gpu(&mj)) /* what reports will say about GPU energy */
            printf("  GPU energy: measured (NVML counters of %d GPU%s)\n", wn_energy_gpu_count(),
                   wn_energy_gpu_count() == 1 ? "" : "s");
        else if (n > 0)
            printf("  GPU energy: not measured (%s)\n", wn_energy_gpu_why());
        return 0;
    }
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "validate")) return cmd_validate(argc - 2, argv + 2);
    if (!strcmp(cmd, "stages")) return cmd_stages(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "tokenizer")) return wn_cmd_tokenizer(argc - 2, argv + 2);
    if (!strcmp(cmd, "train")) return wn_cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "experiment")) return wn_cmd_experiment(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect")) return wn_cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve")) return wn_cmd_serve(argc - 2, argv + 2);
    return usage_error(usage_main, "unknown command '%s'", cmd);
}
