/*
 * classify.c - the text classifier of issue 5: tokenizer, CSV reader,
 * training (softmax regression or naive Bayes), temperature calibration,
 * model files and evaluation.
 *
 * Owns: the model (vocabulary, weights, temperature) and, per thread, a
 * Snowball stemmer with a bounded word -> stem cache and the scratch table
 * classify_text() counts features in.  Refuses: malformed CSV and model
 * files (with file:line), models over the limits of classify.h.  Bad text
 * is never an error: invalid UTF-8 separates words, overlong words are
 * dropped, long texts are cut at CLASSIFY_TOKENS_MAX tokens.
 *
 * Scoring is linear: z_c = b_c + sum_f x_f w_fc with x = (1 + ln tf) * idf,
 * L2-normalised; p = softmax (z / T).  All three training methods produce
 * the same form, so inference and the file format do not depend on them.
 */
#define G_LOG_DOMAIN "intake-router"

#include "router/classify.h"

#include <errno.h>
#include <libstemmer.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

G_DEFINE_QUARK (classify-error-quark, classify_error)

#define CLASSIFY_FILE_MAGIC "intake-classify-model"
#define CLASSIFY_FILE_VERSION 1
/* Bumped whenever classify_tokenize() changes what it emits: a model is
 * only meaningful with the tokenizer it was trained with.  */
#define CLASSIFY_TOKENIZER_VERSION 2
#define CLASSIFY_NONE G_MAXUINT32

/* The most features one text can produce: every token plus a bigram per
 * token; the scratch table is twice that, a power of two.  */
#define CLASSIFY_TEXT_FEATURES_MAX (2 * CLASSIFY_TOKENS_MAX)
#define CLASSIFY_SCRATCH_SLOTS 8192
G_STATIC_ASSERT (CLASSIFY_SCRATCH_SLOTS >= 2 * CLASSIFY_TEXT_FEATURES_MAX);

/* ------------------------------------------------------------ stop words
 * Function words that carry no topic.  Negations (no, not, nor, cant,
 * dont...), question words (how, what, when, where, why, who, which) and
 * words such as "again", "off", "out", "too", "please" stay: they separate
 * complaints from enquiries.  So do (since tokenizer 2) the words that give
 * a message its shape: what happened (was, were, had, has, have, been,
 * being, did, do, does), contrast and cause (but, because), requests
 * (could, would), time (after, before, until, once), "any", "all", "few",
 * "same", "against" and "your" (a message aimed at the service).  Written
 * without apostrophes, as the tokenizer joins "don't" into "dont".  */
static const char *const classify_stop_words[] = {
  "a", "about", "above", "am", "an", "and", "are", "as", "at", "be",
  "below", "between", "both", "by", "doing", "during", "each", "for",
  "from", "further", "having", "he", "hed", "hes", "her", "here", "heres",
  "hers", "herself", "him", "himself", "his", "i", "im", "ive", "if", "in",
  "into", "is", "it", "its", "itself", "lets", "me", "my", "myself", "of",
  "on", "or", "other", "ought", "our", "ours", "ourselves", "own", "she",
  "shes", "should", "so", "some", "such", "than", "that", "thats", "the",
  "their", "theirs", "them", "themselves", "then", "there", "theres",
  "these", "they", "theyd", "theyll", "theyre", "theyve", "this", "those",
  "through", "to", "we", "weve", "while", "whom", "with", "you", "youd",
  "youll", "youre", "youve", "yours", "yourself", "yourselves",
};

/* ------------------------------------------------------ stem exceptions
 * Words whose Snowball stem would merge two departments' vocabulary: the
 * stemmer gives "park" for "parking" and "parked", so a car on the
 * pavement scored as the parks department.  Only forms that can mean
 * nothing but a vehicle are listed; "park" and "parks" (a park, or "she
 * parks on the kerb") keep the stem "park" and the bigrams tell them
 * apart.  Snowball gives no word the stem "parking" (it strips that
 * "-ing"), so the token cannot collide with another word's stem.  Tokenizer 2.  */
static const struct {
  const char *word, *token;
} classify_stem_exceptions[] = {
  { "parking", "parking" },
  { "parked", "parking" },
};

/* -------------------------------------------------------------- polarity
 * Words of complaint and of praise, general English written for intake
 * (docs/classifier.md, "Polarity"), matched on the lower-cased word
 * before stemming.  Every one found adds a token "#neg" or "#pos" after
 * the text's own tokens, so that a complaint in words the training rows
 * never used ("abysmal", "shambles") still counts as one.  A model knows
 * these tokens only if it was trained with them
 * (classify_train_options.polarity); one trained without them never has
 * them in its vocabulary ('#' separates words, so no text token can be
 * "#neg"), which is why they did not need a new tokenizer version.  */
static const char *const classify_negative_words[] = {
  "absurd", "abuse", "abused", "abusive", "abysmal", "aggravated",
  "aggravating", "angrier", "angry", "annoyed", "annoying", "anxious",
  "appalled", "appalling", "atrocious", "awful", "bad", "badly",
  "bizarre", "broken", "careless", "chaos", "chaotic", "cheated",
  "clueless", "cold", "complain", "complained", "complaining",
  "complaint", "complaints", "confused", "confusing", "crap", "crappy",
  "cruel", "damaged", "dangerous", "dead", "denied", "deplorable",
  "desperate", "destroyed", "dirty", "disappointed", "disappointing",
  "disappointment", "disaster", "disastrous", "disgrace", "disgraceful",
  "disgusted", "disgusting", "dishonest", "dismissive", "dreadful",
  "dumb", "embarrassed", "embarrassing", "enraged", "exhausted", "fail",
  "failed", "failing", "fails", "failure", "fed", "filthy", "frustrated",
  "frustrating", "frustration", "furious", "garbage", "gross", "hate",
  "hated", "hates", "horrendous", "horrible", "horrid", "hostile",
  "idiot", "idiotic", "idiots", "ignorant", "ignored", "ignoring", "ill",
  "impolite", "inadequate", "incompetence", "incompetent",
  "inconsiderate", "inconvenience", "inconvenienced", "inconvenient",
  "ineffective", "inefficient", "infuriating", "insane", "insulting",
  "irate", "irritated", "irritating", "joke", "lame", "liar", "lied",
  "lies", "livid", "lousy", "mess", "messed", "miserable", "misleading",
  "mistake", "mistreated", "nasty", "neglect", "neglected", "negligence",
  "negligent", "nightmare", "nonsense", "obnoxious", "offended",
  "offensive", "outrage", "outraged", "outrageous", "pathetic", "poor",
  "poorly", "problem", "problems", "ridiculous", "rip", "ripoff",
  "ripped", "rubbish", "rude", "rudely", "ruin", "ruined", "ruining",
  "sad", "scam", "screwed", "shambles", "shame", "shameful", "shocked",
  "shocking", "shoddy", "sick", "sloppy", "slow", "stressed", "stressful",
  "stupid", "substandard", "sucked", "sucks", "terrible", "terribly",
  "thoughtless", "tired", "trash", "ugly", "unacceptable", "unbelievable",
  "uncomfortable", "unfair", "unfortunately", "unhappy", "unhelpful",
  "unprofessional", "unreliable", "unresponsive", "upset", "upsetting",
  "useless", "waste", "wasted", "wasting", "worse", "worst", "worthless",
  "wrong", "wrongly",
};

static const char *const classify_positive_words[] = {
  "amazing", "appreciate", "appreciated", "awesome", "beautiful", "best",
  "brilliant", "caring", "cheers", "clean", "comfortable", "commend",
  "cool", "courteous", "delighted", "delightful", "efficient", "enjoy",
  "enjoyed", "excellent", "exceptional", "fab", "fabulous", "fantastic",
  "friendly", "glad", "good", "gorgeous", "grateful", "great", "happy",
  "helpful", "impressed", "impressive", "kind", "kudos", "love", "loved",
  "lovely", "marvellous", "nice", "outstanding", "perfect", "pleasant",
  "pleased", "polite", "professional", "prompt", "quick", "recommend",
  "reliable", "smooth", "splendid", "superb", "supportive", "terrific",
  "thank", "thanked", "thankful", "thanks", "thx", "wonderful",
};

/* --------------------------------------------------------- u64 -> u32 map
 * Open addressing, linear probing, for bigrams keyed by the pair of their
 * unigram ids.  Keys are < 2^62, so all-ones marks an empty slot.  */
typedef struct {
  guint64 *keys;
  guint32 *vals;
  gsize mask;       /* slots - 1 */
  gsize used;
} classify_map;

#define CLASSIFY_MAP_EMPTY G_MAXUINT64

static void
classify_map_init (classify_map *map, gsize slots)
{
  gsize n = 16;

  while (n < slots)
    n <<= 1;
  map->keys = g_new (guint64, n);
  memset (map->keys, 0xff, n * sizeof *map->keys);
  map->vals = g_new (guint32, n);
  map->mask = n - 1;
  map->used = 0;
}

static void
classify_map_clear (classify_map *map)
{
  g_clear_pointer (&map->keys, g_free);
  g_clear_pointer (&map->vals, g_free);
  map->mask = map->used = 0;
}

static inline guint64
classify_map_key (guint32 a, guint32 b)
{
  return ((guint64) a << 32) | b;
}

static inline gsize
classify_map_hash (guint64 k)
{
  k ^= k >> 33;
  k *= G_GUINT64_CONSTANT (0xff51afd7ed558ccd);
  k ^= k >> 33;
  return (gsize) k;
}

static inline guint32
classify_map_get (const classify_map *map, guint64 k)
{
  if (map->keys == NULL)
    return CLASSIFY_NONE;
  for (gsize i = classify_map_hash (k) & map->mask;; i = (i + 1) & map->mask)
    {
      if (map->keys[i] == k)
        return map->vals[i];
      if (map->keys[i] == CLASSIFY_MAP_EMPTY)
        return CLASSIFY_NONE;
    }
}

/* Slot of @k, inserted with value CLASSIFY_NONE if absent.  */
static guint32 *
classify_map_slot (classify_map *map, guint64 k)
{
  gsize i;

  if ((map->used + 1) * 2 > map->mask + 1)
    {
      classify_map old = *map;

      classify_map_init (map, (old.mask + 1) * 2);
      for (gsize j = 0; j <= old.mask; j++)
        if (old.keys[j] != CLASSIFY_MAP_EMPTY)
          *classify_map_slot (map, old.keys[j]) = old.vals[j];
      classify_map_clear (&old);
    }
  for (i = classify_map_hash (k) & map->mask;; i = (i + 1) & map->mask)
    {
      if (map->keys[i] == k)
        return &map->vals[i];
      if (map->keys[i] == CLASSIFY_MAP_EMPTY)
        break;
    }
  map->keys[i] = k;
  map->vals[i] = CLASSIFY_NONE;
  map->used++;
  return &map->vals[i];
}

/* --------------------------------------------------------- string table
 * Open addressing keyed by (hash, length, bytes), for the vocabulary of a
 * model and the stem cache of a thread: one hash per token, computed once
 * and reused for both lookups.  Hash 0 marks an empty slot.  */
typedef struct {
  guint64 hash;
  const char *key;         /* vocabulary: names[]; stem cache: owned, and
                            * the stem follows its NUL */
  guint32 len;
  guint32 val;             /* vocabulary: fid; stem cache: stem length, or
                            * CLASSIFY_NONE for a stop word */
  guint64 aux;             /* stem cache: hash of the stem */
  guint8 polarity;         /* stem cache: CLASSIFY_POLARITY_* */
} classify_strent;

enum { CLASSIFY_POLARITY_NONE, CLASSIFY_POLARITY_NEG, CLASSIFY_POLARITY_POS };

typedef struct {
  classify_strent *e;
  gsize mask;
  gsize used;
} classify_strtab;

static inline guint64
classify_hash (const char *s, gsize n)
{
  guint64 h = G_GUINT64_CONSTANT (0xcbf29ce484222325) ^ n;

  for (gsize i = 0; i < n; i++)
    h = (h ^ (guchar) s[i]) * G_GUINT64_CONSTANT (0x100000001b3);
  h ^= h >> 32;
  return h | 1;
}

/* The stem cache's hash of a word (not classify_hash(), which a model's
 * tokens keep): FNV-1a over the bytes from a fixed basis, so that the
 * tokenizer computes it as it copies the word, and the length mixed in at
 * the end.  */
#define CLASSIFY_FNV_BASIS G_GUINT64_CONSTANT (0xcbf29ce484222325)
#define CLASSIFY_FNV_PRIME G_GUINT64_CONSTANT (0x100000001b3)

static inline guint64
classify_word_hash_end (guint64 fnv, gsize n)
{
  fnv ^= (guint64) n * G_GUINT64_CONSTANT (0x9e3779b97f4a7c15);
  fnv ^= fnv >> 32;
  return fnv | 1;
}

static inline guint64
classify_word_hash (const char *s, gsize n)
{
  guint64 h = CLASSIFY_FNV_BASIS;

  for (gsize i = 0; i < n; i++)
    h = (h ^ (guchar) s[i]) * CLASSIFY_FNV_PRIME;
  return classify_word_hash_end (h, n);
}

static void
classify_strtab_init (classify_strtab *t, gsize slots)
{
  gsize n = 16;

  while (n < slots)
    n <<= 1;
  t->e = g_new0 (classify_strent, n);
  t->mask = n - 1;
  t->used = 0;
}

static void
classify_strtab_clear (classify_strtab *t, gboolean free_keys)
{
  for (gsize i = 0; free_keys && t->e != NULL && i <= t->mask; i++)
    if (t->e[i].hash != 0)
      g_free ((char *) t->e[i].key);
  g_clear_pointer (&t->e, g_free);
  t->mask = t->used = 0;
}

/* The entry of @s, or NULL.  With @exact FALSE a matching hash and length
 * is taken for a match: the hot path then touches one slot, not the key
 * bytes elsewhere in memory (half the time per token was that miss).  Two
 * strings of one length meet under a 64-bit hash with probability about
 * n^2 / 2^65 (1e-7 for the largest model); the cost would be one word
 * counted as another.  Training and model loading compare exactly.  */
static inline classify_strent *
classify_strtab_find (const classify_strtab *t, const char *s, gsize n,
                      guint64 h, gboolean exact)
{
  if (t->e == NULL)
    return NULL;
  for (gsize i = h & t->mask;; i = (i + 1) & t->mask)
    {
      classify_strent *e = &t->e[i];

      if (e->hash == 0)
        return NULL;
      if (e->hash == h && e->len == n)
        {
          gsize k = 0;

          if (!exact)
            return e;
          while (k < n && e->key[k] == s[k])
            k++;
          if (k == n)
            return e;
        }
    }
}

/* A new entry for @key (which must be absent); the caller fills val and
 * aux.  */
static classify_strent *
classify_strtab_add (classify_strtab *t, const char *key, gsize n, guint64 h)
{
  gsize i;

  if (t->e == NULL)
    classify_strtab_init (t, 16);
  else if ((t->used + 1) * 2 > t->mask + 1)
    {
      classify_strtab old = *t;

      classify_strtab_init (t, (old.mask + 1) * 2);
      for (gsize j = 0; j <= old.mask; j++)
        if (old.e[j].hash != 0)
          *classify_strtab_add (t, old.e[j].key, old.e[j].len,
                                old.e[j].hash) = old.e[j];
      classify_strtab_clear (&old, FALSE);
    }
  for (i = h & t->mask; t->e[i].hash != 0; i = (i + 1) & t->mask)
    ;
  t->e[i] = (classify_strent) { .hash = h, .key = key, .len = (guint32) n };
  t->used++;
  return &t->e[i];
}

/* ----------------------------------------------------------- the model */

struct classify_model {
  char *label_column;
  classify_method method;
  gboolean bigrams;
  guint n_classes;
  char **classes;          /* [n_classes] */
  double *bias;            /* [n_classes] */
  double temperature;
  guint n_features;
  guint n_unigrams;        /* unigram features are 0 .. n_unigrams-1 */
  char **names;            /* [n_features]: stem, or "a b" for a bigram */
  float *idf;              /* [n_features] */
  float *w;                /* [n_features * n_classes], feature-major */
  classify_strtab vocab;   /* unigram stem (names[]) -> fid */
  classify_map bigram_ids; /* (fid a, fid b) -> fid */
};

static classify_model *
classify_model_new (guint n_classes)
{
  classify_model *m = g_new0 (classify_model, 1);

  m->n_classes = n_classes;
  m->classes = g_new0 (char *, n_classes + 1);
  m->bias = g_new0 (double, n_classes);
  m->temperature = 1.0;
  return m;
}

void
classify_model_free (classify_model *m)
{
  if (m == NULL)
    return;
  g_free (m->label_column);
  g_strfreev (m->classes);
  g_free (m->bias);
  for (guint f = 0; m->names != NULL && f < m->n_features; f++)
    g_free (m->names[f]);
  g_free (m->names);
  g_free (m->idf);
  g_free (m->w);
  classify_strtab_clear (&m->vocab, FALSE);
  classify_map_clear (&m->bigram_ids);
  g_free (m);
}

const char *
classify_model_label_column (const classify_model *m)
{
  return m->label_column;
}

guint
classify_model_n_classes (const classify_model *m)
{
  return m->n_classes;
}

const char *
classify_model_class (const classify_model *m, guint i)
{
  g_return_val_if_fail (i < m->n_classes, NULL);
  return m->classes[i];
}

double
classify_model_temperature (const classify_model *m)
{
  return m->temperature;
}

guint
classify_model_n_features (const classify_model *m)
{
  return m->n_features;
}

/* --------------------------------------------------- per-thread state
 * Snowball stemmers keep state between calls, so each thread has its own,
 * created on first use and freed when the thread exits.  Stemming is the
 * costliest step per word; the cache (cleared when it reaches
 * CLASSIFY_STEM_CACHE_MAX words) makes a repeated word one lookup, which
 * also answers "stop word".  The scratch table counts the features of one
 * text without allocating: a slot is live only if its stamp is current.  */
/* Counts below this take the term frequency weight 1 + ln n from a table
 * made with log() once per thread (the same doubles as calling it).  */
#define CLASSIFY_TF_TABLE 64

typedef struct {
  struct sb_stemmer *stemmer;
  classify_strtab stems;   /* word -> stem */
  guint64 hash_n, hash_q, hash_x;   /* of "#n", "#q", "#x" */
  guint64 hash_neg, hash_pos;       /* of "#neg", "#pos" */
  guint32 stamp;
  guint32 slot_stamp[CLASSIFY_SCRATCH_SLOTS];
  guint32 slot_fid[CLASSIFY_SCRATCH_SLOTS];
  guint32 slot_count[CLASSIFY_SCRATCH_SLOTS];
  guint32 touched[CLASSIFY_TEXT_FEATURES_MAX];
  double x[CLASSIFY_TEXT_FEATURES_MAX];
  double tf[CLASSIFY_TF_TABLE];     /* 1 + ln n for the small counts */
  /* the token array of the last classify_tokens freed on this thread,
   * for the next (classify_tokens_new) */
  gpointer spare_refs;
  guint spare_size;
} classify_thread;

/* Cache @w -> @stem (NULL: stop word); key and stem share one block.  */
static classify_strent *
classify_thread_cache (classify_thread *t, const char *w, gsize len,
                       guint64 h, const char *stem, gsize slen)
{
  char *block = g_malloc (len + 1 + (stem ? slen + 1 : 0));
  classify_strent *e;

  memcpy (block, w, len);
  block[len] = '\0';
  e = classify_strtab_add (&t->stems, block, len, h);
  e->val = CLASSIFY_NONE;
  if (stem != NULL)
    {
      memcpy (block + len + 1, stem, slen);
      block[len + 1 + slen] = '\0';
      e->val = (guint32) slen;
      e->aux = classify_hash (stem, slen);
    }
  return e;
}

/* The polarity words @w[@n] into the stem cache with their Snowball stems
 * and @polarity.  */
static void
classify_thread_fill_polarity (classify_thread *t, const char *const *w,
                               gsize n, guint8 polarity)
{
  for (gsize i = 0; i < n; i++)
    {
      gsize len = strlen (w[i]);
      const sb_symbol *st = sb_stemmer_stem (t->stemmer,
                                             (const sb_symbol *) w[i],
                                             (int) len);
      classify_strent *e;

      if (st == NULL)   /* out of memory inside libstemmer */
        g_error ("classify: sb_stemmer_stem failed");
      g_assert (classify_strtab_find (&t->stems, w[i], len,
                                      classify_word_hash (w[i], len),
                                      TRUE) == NULL);
      e = classify_thread_cache (t, w[i], len,
                                 classify_word_hash (w[i], len),
                                 (const char *) st,
                                 (gsize) sb_stemmer_length (t->stemmer));
      e->polarity = polarity;
    }
}

/* A fresh stem cache that already answers the stop words (no token), the
 * stem exceptions (their fixed token) and the polarity words (their stem,
 * and the polarity).  */
static void
classify_thread_fill_stops (classify_thread *t)
{
  classify_strtab_init (&t->stems, 1024);
  for (gsize i = 0; i < G_N_ELEMENTS (classify_stop_words); i++)
    {
      const char *w = classify_stop_words[i];
      gsize n = strlen (w);

      classify_thread_cache (t, w, n, classify_word_hash (w, n), NULL, 0);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (classify_stem_exceptions); i++)
    {
      const char *w = classify_stem_exceptions[i].word;
      const char *tok = classify_stem_exceptions[i].token;
      gsize n = strlen (w);

      classify_thread_cache (t, w, n, classify_word_hash (w, n), tok,
                             strlen (tok));
    }
  classify_thread_fill_polarity (t, classify_negative_words,
                                 G_N_ELEMENTS (classify_negative_words),
                                 CLASSIFY_POLARITY_NEG);
  classify_thread_fill_polarity (t, classify_positive_words,
                                 G_N_ELEMENTS (classify_positive_words),
                                 CLASSIFY_POLARITY_POS);
}

static void
classify_thread_free (gpointer p)
{
  classify_thread *t = p;

  sb_stemmer_delete (t->stemmer);
  classify_strtab_clear (&t->stems, TRUE);
  g_free (t->spare_refs);
  g_free (t);
}

static GPrivate classify_thread_key = G_PRIVATE_INIT (classify_thread_free);

static classify_thread *
classify_thread_get (void)
{
  classify_thread *t = g_private_get (&classify_thread_key);

  if (t != NULL)
    return t;
  t = g_new0 (classify_thread, 1);
  /* NULL encoding is UTF-8; "english" is built into every libstemmer.  */
  t->stemmer = sb_stemmer_new ("english", NULL);
  g_assert (t->stemmer != NULL);
  classify_thread_fill_stops (t);
  t->hash_n = classify_hash ("#n", 2);
  t->hash_q = classify_hash ("#q", 2);
  t->hash_x = classify_hash ("#x", 2);
  t->hash_neg = classify_hash ("#neg", 4);
  t->hash_pos = classify_hash ("#pos", 4);
  t->tf[1] = 1.0;
  for (guint n = 2; n < CLASSIFY_TF_TABLE; n++)
    t->tf[n] = 1.0 + log (n);
  g_private_set (&classify_thread_key, t);
  return t;
}

/* The entry of a word not in the cache yet (classify_thread_stem()):
 * stemmed and added.  */
static G_GNUC_NO_INLINE const classify_strent *
classify_thread_stem_new (classify_thread *t, const char *w, gsize len,
                          guint64 h)
{
  const sb_symbol *st;

  if (t->stems.used >= CLASSIFY_STEM_CACHE_MAX)
    {
      classify_strtab_clear (&t->stems, TRUE);
      classify_thread_fill_stops (t);
    }
  st = sb_stemmer_stem (t->stemmer, (const sb_symbol *) w, (int) len);
  if (st == NULL)   /* out of memory inside libstemmer */
    g_error ("classify: sb_stemmer_stem failed");
  return classify_thread_cache (t, w, len, h, (const char *) st,
                                (gsize) sb_stemmer_length (t->stemmer));
}

/* (transfer none) The cache entry of the lower-case word @w, whose
 * classify_word_hash() is @h: the stem follows the key's NUL, e->val is
 * its length (CLASSIFY_NONE for a stop word) and e->aux its hash.  A word
 * seen before, most of them, is found without a call.  */
static inline const classify_strent *
classify_thread_stem (classify_thread *t, const char *w, gsize len,
                      guint64 h)
{
  const classify_strent *e = classify_strtab_find (&t->stems, w, len, h,
                                                   FALSE);

  return e != NULL ? e : classify_thread_stem_new (t, w, len, h);
}

/* -------------------------------------------------------------- tokenizer */

/* A token: NUL-terminated, @len bytes, hashed with classify_hash().  */
typedef void (*classify_emit_fn) (const char *tok, gsize len, guint64 hash,
                                  gpointer data);

typedef struct {
  classify_thread *t;
  classify_emit_fn emit;
  gpointer data;
  guint count;
  char last_special;       /* '?' or '!' just emitted: runs count once */
  guint neg, pos;          /* polarity words seen */
  char word[CLASSIFY_TOKEN_BYTES_MAX + 8];
  gsize len;
  guint64 fnv;             /* of word[0 .. len), classify_word_hash() */
  gboolean overlong, ascii, digit, alpha;
} classify_tok;

static inline void
classify_tok_out (classify_tok *k, const char *tok, gsize len, guint64 h)
{
  k->emit (tok, len, h, k->data);
  k->count++;
}

static void
classify_tok_special (classify_tok *k, char c)
{
  if (k->last_special == c)
    return;
  k->last_special = c;
  if (c == '?')
    classify_tok_out (k, "#q", 2, k->t->hash_q);
  else
    classify_tok_out (k, "#x", 2, k->t->hash_x);
}

/* The token of the stem cache's entry @e, and its polarity.  */
static inline void
classify_tok_stem (classify_tok *k, const classify_strent *e)
{
  if (e->val != CLASSIFY_NONE && e->val > 0)
    classify_tok_out (k, e->key + e->len + 1, e->val, e->aux);
  if (e->polarity == CLASSIFY_POLARITY_NEG)
    k->neg++;
  else if (e->polarity == CLASSIFY_POLARITY_POS)
    k->pos++;
}

/* A word with letters outside ASCII or with digits in it (@w, @len bytes,
 * NUL-terminated): casefolded and normalised, digit runs collapsed.  */
static G_GNUC_NO_INLINE void
classify_tok_other (classify_tok *k, char *w, gsize len)
{
  g_autofree char *folded = NULL;
  g_autofree char *norm = NULL;

  if (!k->ascii)
    {
      /* ASCII letters were lower-cased as they came */
      folded = g_utf8_casefold (w, (gssize) len);
      norm = g_utf8_normalize (folded, -1, G_NORMALIZE_NFKC);
      if (norm == NULL || norm[0] == '\0')
        return;
      w = norm;
      len = strlen (norm);
    }
  if (k->digit)
    {
      /* "ua1234" -> "ua0": booking and flight references say nothing
       * about the kind or the topic, their shape does.  */
      gsize o = 0;

      for (gsize i = 0; i < len; i++)
        if (!g_ascii_isdigit (w[i]))
          w[o++] = w[i];
        else if (i == 0 || !g_ascii_isdigit (w[i - 1]))
          w[o++] = '0';
      w[o] = '\0';
      classify_tok_out (k, w, o, classify_hash (w, o));
      return;
    }
  classify_tok_stem (k, classify_thread_stem (k->t, w, len,
                                              classify_word_hash (w, len)));
}

static void
classify_tok_flush (classify_tok *k)
{
  gsize len = k->len;

  k->len = 0;
  if (len == 0)
    return;
  if (k->overlong)
    {
      k->overlong = FALSE;
      return;
    }
  k->last_special = 0;
  if (!k->alpha)
    {
      classify_tok_out (k, "#n", 2, k->t->hash_n);
      return;
    }
  k->word[len] = '\0';
  if (!k->ascii || k->digit)
    classify_tok_other (k, k->word, len);
  else
    classify_tok_stem (k, classify_thread_stem (
                              k->t, k->word, len,
                              classify_word_hash_end (k->fnv, len)));
}

/* An ASCII letter or digit as a word holds it (lower case), or 0 for
 * any other byte (a byte over 0x7f is read by the Unicode path).  */
static const char classify_ascii_word[256] = {
  ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
  ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
  ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e',
  ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j',
  ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n', ['O'] = 'o',
  ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't',
  ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',
  ['Z'] = 'z',
  ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e',
  ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i', ['j'] = 'j',
  ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o',
  ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't',
  ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y',
  ['z'] = 'z',
};

/* Bytes the tokenizer copies of a run of ASCII letters and digits before
 * it looks for the run's end (classify_tokens_each).  */
#define CLASSIFY_RUN_FIRST 16

/* Call @emit for every token of @text, in order (classify_tokenize()).  */
static void
classify_tokens_each (classify_thread *t, const char *text, gssize len,
                      classify_emit_fn emit, gpointer data)
{
  classify_tok k = { .t = t, .emit = emit, .data = data };
  const guchar *p = (const guchar *) text;
  const guchar *end;
  gsize n = len < 0 ? strlen (text) : (gsize) len;

  if (n > CLASSIFY_TEXT_BYTES_MAX)
    n = CLASSIFY_TEXT_BYTES_MAX;
  end = p + n;
  while (p < end && k.count < CLASSIFY_TOKENS_MAX)
    {
      gunichar c;
      gsize clen = 1;
      gboolean alnum, digit;

      if (*p < 0x80)
        {
          c = *p;
          if (classify_ascii_word[c] != 0)
            {
              /* a run of ASCII letters and digits in one loop, copied
               * lower-cased as it is read: the same as going round the
               * outer loop for each */
              const guchar *q = p;
              const guchar *stop = end;
              char *o = k.word + k.len;
              gsize room = k.overlong ? 0 : CLASSIFY_TOKEN_BYTES_MAX - k.len;
              const guchar *lim;
              guchar any = 0, all = 0xff, b;

              guint64 h;

              if (k.len == 0)
                k.ascii = TRUE, k.digit = FALSE, k.alpha = FALSE,
                k.fnv = CLASSIFY_FNV_BASIS;
              if ((gsize) (end - q) > room)
                stop = q + room;
              h = k.fnv;
              lim = (gsize) (stop - q) > CLASSIFY_RUN_FIRST
                      ? q + CLASSIFY_RUN_FIRST : stop;
              for (;;)
                {
                  const guchar *e;

                  while (q < lim
                         && (b = (guchar) classify_ascii_word[*q]) != 0)
                    {
                      /* a lower-case letter has 0x40, a digit has not;
                       * the stem cache's hash as the word is copied */
                      any |= b;
                      all &= b;
                      *o++ = (char) b;
                      h = (h ^ b) * CLASSIFY_FNV_PRIME;
                      q++;
                    }
                  if (q < lim || lim == stop
                      || classify_ascii_word[*q] == 0)
                    break;
                  /* a long run (a line of X's): the rest is measured
                   * before it is copied, as a word longer than the room
                   * is dropped whole */
                  for (e = q; e < stop && classify_ascii_word[*e] != 0; e++)
                    ;
                  if (e == stop && e < end && classify_ascii_word[*e] != 0)
                    {
                      q = e;   /* overlong: below */
                      break;
                    }
                  lim = stop;
                }
              k.fnv = h;
              k.len = (gsize) (o - k.word);
              if (q > p)
                {
                  k.digit |= !(all & 0x40);
                  k.alpha |= (any & 0x40) != 0;
                }
              if (q < end && classify_ascii_word[*q] != 0)
                {
                  /* an overlong word is dropped whole at its end (k.len
                   * stays > 0: the word stays open); what it holds no
                   * longer matters */
                  k.overlong = TRUE;
                  while (q < end && classify_ascii_word[*q] != 0)
                    q++;
                }
              p = q;
              continue;
            }
          alnum = digit = FALSE;
        }
      else
        {
          c = g_utf8_get_char_validated ((const char *) p, end - p);
          if (c == (gunichar) -1 || c == (gunichar) -2)
            c = 0xFFFD;   /* invalid byte: a separator */
          else
            clen = (gsize) (g_utf8_next_char (p) - (const char *) p);
          alnum = g_unichar_isalnum (c);
          digit = alnum && g_unichar_isdigit (c);
        }
      if (alnum)
        {
          /* a letter or digit outside ASCII */
          if (k.len == 0)
            k.ascii = TRUE, k.digit = FALSE, k.alpha = FALSE,
            k.fnv = CLASSIFY_FNV_BASIS;
          if (k.overlong || k.len + clen > CLASSIFY_TOKEN_BYTES_MAX)
            k.overlong = TRUE;   /* k.len stays > 0: the word stays open */
          else
            {
              /* (the hash is of ASCII words only: this one is folded and
               * normalised, then hashed, in classify_tok_other) */
              memcpy (k.word + k.len, p, clen);
              k.len += clen;
              k.ascii = FALSE;
            }
          if (digit)
            k.digit = TRUE;
          else
            k.alpha = TRUE;
          p += clen;
          continue;
        }
      if ((c == '\'' || c == 0x2019) && k.len > 0)
        {
          p += clen;   /* "don't" -> "dont" */
          continue;
        }
      classify_tok_flush (&k);
      if (k.count >= CLASSIFY_TOKENS_MAX)
        break;
      if (c == '?' || c == '!')
        classify_tok_special (&k, (char) c);
      p += clen;
    }
  if (k.count < CLASSIFY_TOKENS_MAX)
    classify_tok_flush (&k);
  for (guint i = 0; i < k.neg && k.count < CLASSIFY_TOKENS_MAX; i++)
    classify_tok_out (&k, "#neg", 4, t->hash_neg);
  for (guint i = 0; i < k.pos && k.count < CLASSIFY_TOKENS_MAX; i++)
    classify_tok_out (&k, "#pos", 4, t->hash_pos);
}

static void
classify_collect (const char *tok, gsize len, guint64 hash, gpointer data)
{
  g_ptr_array_add (data, g_strdup (tok));
}

GStrv
classify_tokenize (const char *text, gssize len)
{
  GPtrArray *out = g_ptr_array_new ();

  classify_tokens_each (classify_thread_get (), text, len, classify_collect,
                        out);
  g_ptr_array_add (out, NULL);
  return (GStrv) g_ptr_array_free (out, FALSE);
}

/* ------------------------------------------------------------- features
 * One text -> the logits of every class, exactly as at training time:
 * unigram ids by stem, bigram ids by the pair of unigram ids (a bigram
 * whose words are not both features is not one either), counted in the
 * thread's scratch table, then weighted and normalised.  */

typedef struct {
  const classify_model *m;
  classify_thread *t;
  guint32 prev;
  guint n_touched;
} classify_feat;

static void
classify_feat_count (classify_feat *f, guint32 fid)
{
  classify_thread *t = f->t;

  for (gsize i = (fid * 2654435761u) & (CLASSIFY_SCRATCH_SLOTS - 1);;
       i = (i + 1) & (CLASSIFY_SCRATCH_SLOTS - 1))
    {
      if (t->slot_stamp[i] != t->stamp)
        {
          t->slot_stamp[i] = t->stamp;
          t->slot_fid[i] = fid;
          t->slot_count[i] = 1;
          t->touched[f->n_touched++] = (guint32) i;
          return;
        }
      if (t->slot_fid[i] == fid)
        {
          t->slot_count[i]++;
          return;
        }
    }
}

/* Count the token of @len bytes whose classify_hash() is @hash, and the
 * bigram it ends.  The vocabulary is searched by hash and length only
 * (classify_strtab_find(), @exact FALSE), so the token's bytes are not
 * needed.  */
static inline void
classify_feat_add (classify_feat *f, gsize len, guint64 hash)
{
  const classify_strent *e = classify_strtab_find (&f->m->vocab, NULL, len,
                                                   hash, FALSE);
  guint32 fid = e ? e->val : CLASSIFY_NONE;

  if (fid != CLASSIFY_NONE)
    classify_feat_count (f, fid);
  if (f->m->bigrams && fid != CLASSIFY_NONE && f->prev != CLASSIFY_NONE)
    {
      guint32 b = classify_map_get (&f->m->bigram_ids,
                                    classify_map_key (f->prev, fid));

      if (b != CLASSIFY_NONE)
        classify_feat_count (f, b);
    }
  f->prev = fid;
}

static void
classify_feat_emit (const char *tok, gsize len, guint64 hash, gpointer data)
{
  classify_feat_add (data, len, hash);
}

static void
classify_thread_next_stamp (classify_thread *t)
{
  if (++t->stamp == 0)
    {
      memset (t->slot_stamp, 0, sizeof t->slot_stamp);
      t->stamp = 1;
    }
}

/* x of the @n counted features into t->x[]: (1 + ln tf) * idf, then
 * L2-normalised.  Training and scoring both come here.  */
static void
classify_feat_weigh (const classify_model *m, classify_thread *t, guint n)
{
  double norm = 0;

  for (guint i = 0; i < n; i++)
    {
      guint s = t->touched[i];
      guint32 cnt = t->slot_count[s];
      double tf = cnt < CLASSIFY_TF_TABLE ? t->tf[cnt] : 1.0 + log (cnt);
      double x = tf * m->idf[t->slot_fid[s]];

      t->x[i] = x;
      norm += x * x;
    }
  norm = 1.0 / sqrt (norm);
  for (guint i = 0; i < n; i++)
    t->x[i] *= norm;
}

/* The tokens of one text, kept so that several models score it with one
 * pass of the tokenizer and the stemmer: the length and hash of each is
 * all that scoring reads (classify_feat_add).  */
typedef struct {
  guint64 hash;
  gsize len;
} classify_token_ref;

struct classify_tokens {
  classify_token_ref *refs;
  guint n_refs, refs_size;
};

/* A plain array grown by doubling: GString and GArray appends were a
 * twentieth of a routing decision.  */
static void
classify_tokens_keep (const char *tok, gsize len, guint64 hash,
                      gpointer data)
{
  classify_tokens *k = data;

  if (k->n_refs == k->refs_size)
    {
      k->refs_size *= 2;
      k->refs = g_renew (classify_token_ref, k->refs, k->refs_size);
    }
  k->refs[k->n_refs++] = (classify_token_ref) { hash, len };
}

/* The token array is the thread's spare when it has one (the array of
 * the last tokens freed on it, at most CLASSIFY_TOKENS_MAX and a few
 * entries): a 4 KiB allocation a decision, and its growing, were large
 * ones for malloc, which first consolidates the small chunks freed since
 * (glibc's malloc_consolidate).  */
classify_tokens *
classify_tokens_new (const char *text, gssize len)
{
  classify_thread *t = classify_thread_get ();
  classify_tokens *k = g_new0 (classify_tokens, 1);

  if (t->spare_refs != NULL)
    {
      k->refs = g_steal_pointer (&t->spare_refs);
      k->refs_size = t->spare_size;
    }
  else
    {
      k->refs_size = 256;
      k->refs = g_new (classify_token_ref, k->refs_size);
    }
  g_return_val_if_fail (text != NULL || len == 0, k);
  classify_tokens_each (t, text != NULL ? text : "", len,
                        classify_tokens_keep, k);
  return k;
}

void
classify_tokens_free (classify_tokens *k)
{
  classify_thread *t;

  if (k == NULL)
    return;
  /* kept for the next on this thread, unless it has one */
  t = g_private_get (&classify_thread_key);
  if (t != NULL && t->spare_refs == NULL)
    {
      t->spare_refs = k->refs;
      t->spare_size = k->refs_size;
    }
  else
    g_free (k->refs);
  g_free (k);
}

/* Two doubles, added and multiplied lane by lane (GCC and Clang vector
 * extension: SSE2 on x86-64, plain code elsewhere).  */
typedef double classify_v2d __attribute__ ((vector_size (16)));

/* Raw logits (before the temperature) of @text, or of the kept tokens
 * @toks when @text is NULL, into @z[n_classes]; returns the number of
 * distinct features found.  */
static guint
classify_logits (const classify_model *m, const char *text, gssize len,
                 const classify_tokens *toks, double *z)
{
  classify_thread *t = classify_thread_get ();
  classify_feat f = { .m = m, .t = t, .prev = CLASSIFY_NONE };
  guint C = m->n_classes;

  classify_thread_next_stamp (t);
  if (toks != NULL)
    for (guint i = 0; i < toks->n_refs; i++)
      {
        const classify_token_ref *r = &toks->refs[i];
        classify_feat_add (&f, r->len, r->hash);
      }
  else
    classify_tokens_each (t, text, len, classify_feat_emit, &f);
  memcpy (z, m->bias, C * sizeof *z);
  if (f.n_touched == 0)
    return 0;
  classify_feat_weigh (m, t, f.n_touched);
  for (guint i = 0; i < f.n_touched; i++)
    {
      guint32 fid = t->slot_fid[t->touched[i]];
      double x = t->x[i];
      const float *w = m->w + (gsize) fid * C;
      const classify_v2d xx = { x, x };
      guint c = 0;

      /* two classes a step: each z[c] still gets x * w[c] added in
       * feature order, in double, so the sums are the same bits */
      for (; c + 2 <= C; c += 2)
        {
          classify_v2d zz, ww = { w[c], w[c + 1] };

          memcpy (&zz, z + c, sizeof zz);
          zz += xx * ww;
          memcpy (z + c, &zz, sizeof zz);
        }
      for (; c < C; c++)
        z[c] += x * w[c];
    }
  return f.n_touched;
}

/* p = softmax (z / T), in place.  */
static void
classify_softmax (double *z, guint C, double T)
{
  double mx = -INFINITY, sum = 0;

  for (guint c = 0; c < C; c++)
    {
      z[c] /= T;
      mx = MAX (mx, z[c]);
    }
  for (guint c = 0; c < C; c++)
    sum += (z[c] = exp (z[c] - mx));
  for (guint c = 0; c < C; c++)
    z[c] /= sum;
}

static guint
classify_scores (const classify_model *m, const char *text, gssize len,
                 const classify_tokens *toks, classify_score *out, guint max)
{
  double p[CLASSIFY_CLASSES_MAX];
  guint order[CLASSIFY_CLASSES_MAX];
  guint C = m->n_classes;

  classify_logits (m, text, len, toks, p);
  classify_softmax (p, C, m->temperature);
  /* insertion sort, stable: ties stay in class order */
  for (guint c = 0; c < C; c++)
    {
      guint j = c;

      while (j > 0 && p[order[j - 1]] < p[c])
        {
          order[j] = order[j - 1];
          j--;
        }
      order[j] = c;
    }
  max = MIN (max, C);
  for (guint i = 0; i < max; i++)
    {
      out[i].label = m->classes[order[i]];
      out[i].score = p[order[i]];
    }
  return max;
}

guint
classify_text (const classify_model *m, const char *text, gssize len,
               classify_score *out, guint max)
{
  g_return_val_if_fail (text != NULL || len == 0, 0);
  return classify_scores (m, text != NULL ? text : "", len, NULL, out, max);
}

guint
classify_text_tokens (const classify_model *m, const classify_tokens *toks,
                      classify_score *out, guint max)
{
  g_return_val_if_fail (toks != NULL, 0);
  return classify_scores (m, NULL, 0, toks, out, max);
}

/* ------------------------------------------------------------------- CSV */

void
classify_csv_free (classify_csv *csv)
{
  if (csv == NULL)
    return;
  g_ptr_array_unref (csv->texts);
  g_ptr_array_unref (csv->labels);
  g_array_unref (csv->lines);
  g_free (csv);
}

/* A label may go into a model file and a report: printable UTF-8, no
 * tabs or line ends, bounded.  */
static gboolean
classify_label_ok (const char *s, const char **why)
{
  gsize n = strlen (s);

  if (n > CLASSIFY_LABEL_BYTES_MAX)
    {
      *why = "label longer than " G_STRINGIFY (CLASSIFY_LABEL_BYTES_MAX)
             " bytes";
      return FALSE;
    }
  if (!g_utf8_validate (s, (gssize) n, NULL))
    {
      *why = "label is not UTF-8";
      return FALSE;
    }
  for (const char *q = s; *q; q = g_utf8_next_char (q))
    if (g_unichar_iscntrl (g_utf8_get_char (q)))
      {
        *why = "control character in label";
        return FALSE;
      }
  return TRUE;
}

classify_csv *
classify_csv_parse (const char *name, const char *data, gsize len,
                    const char *label, GError **error)
{
  g_autoptr (classify_csv) csv = g_new0 (classify_csv, 1);
  g_autoptr (GPtrArray) fields = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) cur = g_string_new (NULL);
  gsize i = 0;
  guint line = 1, rec_line = 1;
  gint text_col = -1, label_col = -1;
  guint n_cols = 0;
  gboolean header = TRUE;

  csv->texts = g_ptr_array_new_with_free_func (g_free);
  csv->labels = g_ptr_array_new_with_free_func (g_free);
  csv->lines = g_array_new (FALSE, FALSE, sizeof (guint));
  if (len >= 3 && memcmp (data, "\xEF\xBB\xBF", 3) == 0)
    i = 3;

#define CSV_FAIL(l, ...)                                                   \
  do                                                                       \
    {                                                                      \
      g_autofree char *why_ = g_strdup_printf (__VA_ARGS__);               \
      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_CSV, "%s:%u: %s", \
                   name, (l), why_);                                       \
      return NULL;                                                         \
    }                                                                      \
  while (0)

  while (i < len)
    {
      gboolean end_rec = FALSE;

      rec_line = line;
      g_ptr_array_set_size (fields, 0);
      while (!end_rec)
        {
          g_string_truncate (cur, 0);
          if (i < len && data[i] == '"')
            {
              guint open_line = line;

              i++;
              for (;;)
                {
                  if (i >= len)
                    CSV_FAIL (open_line, "unterminated quoted field");
                  if (data[i] == '"')
                    {
                      if (i + 1 < len && data[i + 1] == '"')
                        {
                          g_string_append_c (cur, '"');
                          i += 2;
                          continue;
                        }
                      i++;
                      break;
                    }
                  if (data[i] == '\0')
                    CSV_FAIL (line, "NUL byte");
                  if (data[i] == '\n')
                    line++;
                  g_string_append_c (cur, data[i++]);
                }
              if (i < len && data[i] != ',' && data[i] != '\n'
                  && !(data[i] == '\r' && i + 1 < len && data[i + 1] == '\n'))
                CSV_FAIL (line, "text after a closing quote");
            }
          else
            {
              while (i < len && data[i] != ',' && data[i] != '\n'
                     && !(data[i] == '\r' && i + 1 < len
                          && data[i + 1] == '\n'))
                {
                  if (data[i] == '"')
                    CSV_FAIL (line, "quote inside an unquoted field");
                  if (data[i] == '\0')
                    CSV_FAIL (line, "NUL byte");
                  g_string_append_c (cur, data[i++]);
                }
            }
          g_ptr_array_add (fields, g_strndup (cur->str, cur->len));
          if (i >= len)
            end_rec = TRUE;
          else if (data[i] == ',')
            i++;
          else
            {
              i += data[i] == '\r' ? 2 : 1;
              line++;
              end_rec = TRUE;
            }
        }

      /* a blank line is one empty unquoted field: skip it */
      if (fields->len == 1 && ((char *) fields->pdata[0])[0] == '\0'
          && (header || n_cols > 1))
        continue;
      if (header)
        {
          for (guint c = 0; c < fields->len; c++)
            {
              const char *h = fields->pdata[c];

              if (strcmp (h, "text") == 0)
                {
                  if (text_col >= 0)
                    CSV_FAIL (rec_line, "column \"text\" twice in the header");
                  text_col = (gint) c;
                }
              if (strcmp (h, label) == 0)
                {
                  if (label_col >= 0)
                    CSV_FAIL (rec_line, "column \"%s\" twice in the header",
                              label);
                  label_col = (gint) c;
                }
            }
          if (text_col < 0)
            CSV_FAIL (rec_line, "no column \"text\" in the header");
          if (label_col < 0)
            CSV_FAIL (rec_line, "no column \"%s\" in the header", label);
          n_cols = fields->len;
          header = FALSE;
          continue;
        }
      if (fields->len != n_cols)
        CSV_FAIL (rec_line, "%u fields, the header has %u", fields->len,
                  n_cols);
      {
        char *lab = g_strstrip (g_strdup (fields->pdata[label_col]));
        const char *why = NULL;

        if (lab[0] == '\0')
          {
            g_free (lab);
            csv->skipped++;
            continue;
          }
        if (!classify_label_ok (lab, &why))
          {
            g_free (lab);
            CSV_FAIL (rec_line, "%s", why);
          }
        g_ptr_array_add (csv->labels, lab);
        g_ptr_array_add (csv->texts, g_strdup (fields->pdata[text_col]));
        g_array_append_val (csv->lines, rec_line);
      }
    }
  if (header)
    CSV_FAIL (line, "no header row");
#undef CSV_FAIL
  return g_steal_pointer (&csv);
}

classify_csv *
classify_csv_read (const char *path, const char *label, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  GStatBuf st;

  if (g_stat (path, &st) == 0 && st.st_size > CLASSIFY_CSV_BYTES_MAX)
    {
      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_CSV,
                   "%s: larger than %d bytes", path, CLASSIFY_CSV_BYTES_MAX);
      return NULL;
    }
  if (!g_file_get_contents (path, &data, &len, NULL))
    {
      int e = errno;

      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_IO,
                   "%s: cannot read: %s", path, g_strerror (e));
      return NULL;
    }
  return classify_csv_parse (path, data, len, label, error);
}

/* -------------------------------------------------------------- training */

void
classify_train_options_init (classify_train_options *o)
{
  *o = (classify_train_options) {
    .method = CLASSIFY_METHOD_LOGREG,
    .bigrams = TRUE,
    .min_df = 0,   /* 0: 2, or 1 below 200 rows */
    .balanced = TRUE,
    .epochs = 15,
    .l2 = 3e-5,
    .alpha = 0.1,
    .folds = 5,
    .seed = 5,
    .seeds = 1,
  };
}

/* Training data: every text tokenized once into ids of one intern table
 * shared by all the cross-validation folds.  */
typedef struct {
  GHashTable *intern;      /* stem -> id + 1 (keys in names) */
  GPtrArray *names;        /* id -> stem */
  GPtrArray *docs;         /* GArray of guint32 per text */
  guint32 *y;              /* class of each text */
  guint n_classes;
  char **classes;
  const classify_train_options *o;
} classify_data;

typedef struct {
  classify_data *d;
  GArray *doc;
  gboolean polarity;   /* keep "#neg" and "#pos" */
} classify_intern_ctx;

static void
classify_intern_emit (const char *tok, gsize len, guint64 hash,
                      gpointer data)
{
  classify_intern_ctx *x = data;
  gpointer v;
  guint32 id;

  if (!x->polarity && len == 4 && tok[0] == '#'
      && (strcmp (tok, "#neg") == 0 || strcmp (tok, "#pos") == 0))
    return;
  v = g_hash_table_lookup (x->d->intern, tok);
  if (v == NULL)
    {
      char *s = g_strdup (tok);

      id = x->d->names->len;
      g_ptr_array_add (x->d->names, s);
      g_hash_table_insert (x->d->intern, s, GUINT_TO_POINTER (id + 1));
    }
  else
    id = GPOINTER_TO_UINT (v) - 1;
  g_array_append_val (x->doc, id);
}

/* Vectorise training text @i for model @m: sparse (fid, x) pairs into
 * @fids / @xs, following classify_logits() exactly.  */
static void
classify_doc_vector (const classify_model *m, const classify_data *d,
                     const guint32 *uni, guint i, GArray *fids, GArray *xs)
{
  GArray *doc = d->docs->pdata[i];
  classify_thread *t = classify_thread_get ();
  classify_feat f = { .m = m, .t = t, .prev = CLASSIFY_NONE };

  classify_thread_next_stamp (t);
  for (guint k = 0; k < doc->len; k++)
    {
      guint32 fid = uni[g_array_index (doc, guint32, k)];

      if (fid != CLASSIFY_NONE)
        classify_feat_count (&f, fid);
      if (m->bigrams && fid != CLASSIFY_NONE && f.prev != CLASSIFY_NONE)
        {
          guint32 b = classify_map_get (&m->bigram_ids,
                                        classify_map_key (f.prev, fid));

          if (b != CLASSIFY_NONE)
            classify_feat_count (&f, b);
        }
      f.prev = fid;
    }
  g_array_set_size (fids, 0);
  g_array_set_size (xs, 0);
  classify_feat_weigh (m, t, f.n_touched);
  for (guint k = 0; k < f.n_touched; k++)
    {
      g_array_append_val (fids, t->slot_fid[t->touched[k]]);
      g_array_append_val (xs, t->x[k]);
    }
}

/* Vocabulary of the texts @rows[0..n): features with document frequency
 * >= min_df, unigrams first.  Fills m->names/idf/unigrams/bigram_ids and
 * @uni (intern id -> unigram fid).  */
static void
classify_build_vocab (classify_model *m, const classify_data *d,
                      const guint *rows, guint n, guint min_df,
                      guint32 *uni)
{
  guint V = d->names->len;
  g_autofree guint32 *df = g_new0 (guint32, MAX (V, 1));
  g_autofree guint32 *seen = g_new (guint32, MAX (V, 1));
  g_autoptr (GArray) bdf = g_array_new (FALSE, TRUE, sizeof (guint32));
  g_autoptr (GArray) bseen = g_array_new (FALSE, TRUE, sizeof (guint32));
  g_autoptr (GArray) bkey = g_array_new (FALSE, FALSE, sizeof (guint64));
  classify_map bmap;
  guint F = 0;

  memset (seen, 0xff, V * sizeof *seen);
  classify_map_init (&bmap, 1024);
  for (guint r = 0; r < n; r++)
    {
      GArray *doc = d->docs->pdata[rows[r]];

      for (guint k = 0; k < doc->len; k++)
        {
          guint32 a = g_array_index (doc, guint32, k);

          if (seen[a] != r)
            seen[a] = r, df[a]++;
          if (m->bigrams && k > 0)
            {
              guint64 key = classify_map_key (
                g_array_index (doc, guint32, k - 1), a);
              guint32 *slot = classify_map_slot (&bmap, key);

              if (*slot == CLASSIFY_NONE)
                {
                  guint32 zero = 0, none = G_MAXUINT32;

                  *slot = bdf->len;
                  g_array_append_val (bdf, zero);
                  g_array_append_val (bseen, none);
                  g_array_append_val (bkey, key);
                }
              if (g_array_index (bseen, guint32, *slot) != r)
                {
                  g_array_index (bseen, guint32, *slot) = r;
                  g_array_index (bdf, guint32, *slot)++;
                }
            }
        }
    }
  /* raise min_df until the model fits CLASSIFY_FEATURES_MAX */
  for (;; min_df++)
    {
      F = 0;
      for (guint a = 0; a < V; a++)
        F += df[a] >= min_df;
      for (guint b = 0; b < bdf->len; b++)
        F += g_array_index (bdf, guint32, b) >= min_df;
      if (F <= CLASSIFY_FEATURES_MAX)
        break;
    }
  m->names = g_new0 (char *, F);
  m->idf = g_new (float, F);
  F = 0;
  for (guint a = 0; a < V; a++)
    {
      uni[a] = CLASSIFY_NONE;
      if (df[a] < min_df)
        continue;
      uni[a] = F;
      m->names[F] = g_strdup (d->names->pdata[a]);
      m->idf[F] = (float) (log ((1.0 + n) / (1.0 + df[a])) + 1.0);
      classify_strtab_add (&m->vocab, m->names[F], strlen (m->names[F]),
                           classify_hash (m->names[F],
                                          strlen (m->names[F])))->val = F;
      F++;
    }
  m->n_unigrams = F;
  classify_map_init (&m->bigram_ids, 64);
  for (guint b = 0; b < bdf->len; b++)
    {
      guint64 key = g_array_index (bkey, guint64, b);
      guint32 a0 = (guint32) (key >> 32), a1 = (guint32) key;
      guint32 bd = g_array_index (bdf, guint32, b);

      if (bd < min_df)
        continue;
      /* df(bigram) <= df(each word), so both words are features */
      g_assert (uni[a0] != CLASSIFY_NONE && uni[a1] != CLASSIFY_NONE);
      *classify_map_slot (&m->bigram_ids,
                          classify_map_key (uni[a0], uni[a1])) = F;
      m->names[F] = g_strconcat (d->names->pdata[a0], " ",
                                 (const char *) d->names->pdata[a1], NULL);
      m->idf[F] = (float) (log ((1.0 + n) / (1.0 + bd)) + 1.0);
      F++;
    }
  m->n_features = F;
  classify_map_clear (&bmap);
}

/* Train on rows @rows[0..n) of @d: a model with all d->n_classes classes
 * and temperature 1.  */
/* The weighted counts of every feature by class (@fc, F x C, added to),
 * by class (@tot) and by feature (@fsum); returns their sum.  */
static double
classify_count_classes (const classify_data *d, const guint *rows, guint n,
                        GPtrArray *vf, GPtrArray *vx, guint C, double *fc,
                        double *tot, double *fsum)
{
  double all = 0;

  for (guint r = 0; r < n; r++)
    {
      GArray *fa = vf->pdata[r], *xa = vx->pdata[r];
      guint y = d->y[rows[r]];

      for (guint k = 0; k < fa->len; k++)
        {
          guint32 fid = g_array_index (fa, guint32, k);
          double x = g_array_index (xa, double, k);

          fc[(gsize) fid * C + y] += x;
          tot[y] += x;
          fsum[fid] += x;
          all += x;
        }
    }
  return all;
}

static classify_model *
classify_train_rows (const classify_data *d, const guint *rows, guint n)
{
  const classify_train_options *o = d->o;
  guint C = d->n_classes;
  classify_model *m = classify_model_new (C);
  g_autofree guint32 *uni = g_new (guint32, MAX (d->names->len, 1));
  g_autofree guint *count = g_new0 (guint, C);
  g_autofree double *cw = g_new0 (double, C);
  g_autoptr (GPtrArray) vf = g_ptr_array_new_with_free_func (
    (GDestroyNotify) g_array_unref);
  g_autoptr (GPtrArray) vx = g_ptr_array_new_with_free_func (
    (GDestroyNotify) g_array_unref);
  g_autofree double *W = NULL;
  g_autofree double *R = NULL;     /* nblr: per feature and class scale */
  guint min_df = o->min_df ? o->min_df : (n < 200 ? 1 : 2);
  guint F;

  m->method = o->method;
  m->bigrams = o->bigrams;
  for (guint c = 0; c < C; c++)
    m->classes[c] = g_strdup (d->classes[c]);
  classify_build_vocab (m, d, rows, n, min_df, uni);
  F = m->n_features;
  for (guint r = 0; r < n; r++)
    {
      GArray *fa = g_array_new (FALSE, FALSE, sizeof (guint32));
      GArray *xa = g_array_new (FALSE, FALSE, sizeof (double));

      classify_doc_vector (m, d, uni, rows[r], fa, xa);
      g_ptr_array_add (vf, fa);
      g_ptr_array_add (vx, xa);
      count[d->y[rows[r]]]++;
    }
  for (guint c = 0; c < C; c++)
    {
      guint present = 0;

      for (guint k = 0; k < C; k++)
        present += count[k] > 0;
      cw[c] = !o->balanced ? 1.0
              : count[c] ? (double) n / ((double) present * count[c]) : 0;
    }
  W = g_new0 (double, (gsize) F * C);
  if (o->method == CLASSIFY_METHOD_NBLR)
    {
      /* r_fc = log ((p_fc / |p_c|) / (q_fc / |q_c|)): p the weighted
       * counts of f in class c, q in every other class, both smoothed by
       * alpha; the regression then sees x_f r_fc for class c.  */
      g_autofree double *tot = g_new0 (double, C);
      g_autofree double *fsum = g_new0 (double, F);
      double all;

      R = g_new0 (double, (gsize) F * C);
      all = classify_count_classes (d, rows, n, vf, vx, C, R, tot, fsum);
      for (guint f = 0; f < F; f++)
        for (guint c = 0; c < C; c++)
          {
            double pc = R[(gsize) f * C + c];
            double qc = fsum[f] - pc;
            double lp = log ((pc + o->alpha) / (tot[c] + o->alpha * F));
            double lq = log ((qc + o->alpha) / (all - tot[c] + o->alpha * F));

            R[(gsize) f * C + c] = lp - lq;
          }
    }

  if (o->method == CLASSIFY_METHOD_LOGREG || o->method == CLASSIFY_METHOD_NBLR)
    {
      /* o->seeds runs (seed, seed + 1, ...) averaged: a linear model's
       * mean weights, so that the result depends less on the shuffle  */
      guint reps = MAX (o->seeds, 1);
      g_autofree double *Wacc = g_new0 (double, (gsize) F * C);
      double bacc[CLASSIFY_CLASSES_MAX] = { 0 };

      for (guint rep = 0; rep < reps; rep++)
        {
          g_autofree guint *order = g_new (guint, n);
          g_autoptr (GRand) rng = g_rand_new_with_seed (o->seed + rep);
          double scale = 1.0, t0 = 1.0 / (o->l2 * 0.5);
          double z[CLASSIFY_CLASSES_MAX];
          guint64 t = 0;

          if (F > 0)
            memset (W, 0, (gsize) F * C * sizeof *W);
          memset (m->bias, 0, C * sizeof *m->bias);

          for (guint r = 0; r < n; r++)
            order[r] = r;
          for (guint e = 0; e < o->epochs; e++)
            {
              for (guint r = n; r > 1; r--)
                {
                  guint j = (guint) g_rand_int_range (rng, 0, (gint32) r);
                  guint tmp = order[r - 1];

                  order[r - 1] = order[j];
                  order[j] = tmp;
                }
              for (guint r = 0; r < n; r++)
                {
                  guint i = order[r];
                  GArray *fa = vf->pdata[i], *xa = vx->pdata[i];
                  guint y = d->y[rows[i]];
                  double eta = 1.0 / (o->l2 * (t0 + (double) t++));

                  memcpy (z, m->bias, C * sizeof *z);
                  for (guint k = 0; k < fa->len; k++)
                    {
                      gsize fo = (gsize) g_array_index (fa, guint32, k) * C;
                      const double *v = W + fo;
                      double x = g_array_index (xa, double, k) * scale;

                      if (R != NULL)
                        for (guint c = 0; c < C; c++)
                          z[c] += x * v[c] * R[fo + c];
                      else
                        for (guint c = 0; c < C; c++)
                          z[c] += x * v[c];
                    }
                  classify_softmax (z, C, 1.0);
                  for (guint c = 0; c < C; c++)
                    z[c] = cw[y] * (z[c] - (c == y ? 1.0 : 0.0));
                  scale *= 1.0 - eta * o->l2;
                  if (scale < 1e-9)
                    {
                      for (gsize k = 0; k < (gsize) F * C; k++)
                        W[k] *= scale;
                      scale = 1.0;
                    }
                  for (guint k = 0; k < fa->len; k++)
                    {
                      gsize fo = (gsize) g_array_index (fa, guint32, k) * C;
                      double *v = W + fo;
                      double x = g_array_index (xa, double, k) * eta / scale;

                      if (R != NULL)
                        for (guint c = 0; c < C; c++)
                          v[c] -= x * z[c] * R[fo + c];
                      else
                        for (guint c = 0; c < C; c++)
                          v[c] -= x * z[c];
                    }
                  for (guint c = 0; c < C; c++)
                    m->bias[c] -= eta * z[c];
                }
            }
          for (gsize k = 0; k < (gsize) F * C; k++)
            W[k] *= scale * (R != NULL ? R[k] : 1.0);
          for (gsize k = 0; k < (gsize) F * C; k++)
            Wacc[k] += W[k] / reps;
          for (guint c = 0; c < C; c++)
            bacc[c] += m->bias[c] / reps;
        }
      if (F > 0)
        memcpy (W, Wacc, (gsize) F * C * sizeof *W);
      memcpy (m->bias, bacc, C * sizeof *m->bias);
    }
  else
    {
      /* Naive Bayes over the weighted counts x: theta_fc estimated from
       * class c (NB) or from every class but c (CNB, whose weights are
       * then negated).  Balanced: uniform priors.  */
      g_autofree double *tot = g_new0 (double, C);
      g_autofree double *fsum = g_new0 (double, F);
      double all;
      gboolean cnb = o->method == CLASSIFY_METHOD_CNB;

      all = classify_count_classes (d, rows, n, vf, vx, C, W, tot, fsum);
      for (guint f = 0; f < F; f++)
        for (guint c = 0; c < C; c++)
          {
            double num = cnb ? fsum[f] - W[(gsize) f * C + c]
                             : W[(gsize) f * C + c];
            double den = cnb ? all - tot[c] : tot[c];
            double th = log ((num + o->alpha) / (den + o->alpha * F));

            W[(gsize) f * C + c] = cnb ? -th : th;
          }
      for (guint c = 0; c < C; c++)
        m->bias[c] = o->balanced || cnb
                       ? 0
                       : log ((count[c] + 1.0) / ((double) n + C));
    }
  m->w = g_new (float, (gsize) F * C);
  for (gsize k = 0; k < (gsize) F * C; k++)
    m->w[k] = (float) W[k];
  return m;
}

/* Mean negative log-likelihood of the gold classes under softmax (z/T).  */
static double
classify_nll (const double *z, const guint32 *y, guint n, guint C, double T)
{
  double loss = 0;

  for (guint i = 0; i < n; i++)
    {
      const double *zi = z + (gsize) i * C;
      double mx = -INFINITY, sum = 0;

      for (guint c = 0; c < C; c++)
        mx = MAX (mx, zi[c] / T);
      for (guint c = 0; c < C; c++)
        sum += exp (zi[c] / T - mx);
      loss += mx + log (sum) - zi[y[i]] / T;
    }
  return loss / n;
}

/* The temperature minimising the log-loss of out-of-fold logits: golden-
 * section search on ln T over [ln 0.05, ln 500] (the loss is convex in
 * 1/T, so unimodal in ln T).  */
static double
classify_fit_temperature (const double *z, const guint32 *y, guint n,
                          guint C)
{
  const double g = (sqrt (5.0) - 1) / 2;
  double a = log (0.05), b = log (500.0);
  double x1 = b - g * (b - a), x2 = a + g * (b - a);
  double f1 = classify_nll (z, y, n, C, exp (x1));
  double f2 = classify_nll (z, y, n, C, exp (x2));

  for (int it = 0; it < 60; it++)
    {
      if (f1 < f2)
        {
          b = x2, x2 = x1, f2 = f1;
          x1 = b - g * (b - a);
          f1 = classify_nll (z, y, n, C, exp (x1));
        }
      else
        {
          a = x1, x1 = x2, f1 = f2;
          x2 = a + g * (b - a);
          f2 = classify_nll (z, y, n, C, exp (x2));
        }
    }
  return exp ((a + b) / 2);
}

static void
classify_data_clear (classify_data *d)
{
  g_clear_pointer (&d->intern, g_hash_table_unref);
  g_clear_pointer (&d->names, g_ptr_array_unref);
  g_clear_pointer (&d->docs, g_ptr_array_unref);
  g_clear_pointer (&d->y, g_free);
  g_clear_pointer (&d->classes, g_strfreev);
}

classify_model *
classify_train (const char *const *texts, const char *const *labels, gsize n,
                const char *label_column,
                const classify_train_options *options, GError **error)
{
  classify_train_options defaults;
  classify_data d = { 0 };
  g_autoptr (GHashTable) class_ids = g_hash_table_new (g_str_hash,
                                                       g_str_equal);
  g_autoptr (GPtrArray) classes = g_ptr_array_new ();
  g_autofree guint *rows = NULL;
  classify_model *m;
  guint K;

  if (options == NULL)
    {
      classify_train_options_init (&defaults);
      options = &defaults;
    }
  g_return_val_if_fail (n < G_MAXUINT32 / 2, NULL);
  d.o = options;
  d.y = g_new (guint32, MAX (n, 1));
  for (gsize i = 0; i < n; i++)
    {
      gpointer v;
      const char *why = NULL;

      if (!classify_label_ok (labels[i], &why) || labels[i][0] == '\0')
        {
          g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA,
                       "row %" G_GSIZE_FORMAT ": %s", i + 1,
                       why ? why : "empty label");
          classify_data_clear (&d);
          return NULL;
        }
      if (!g_hash_table_lookup_extended (class_ids, labels[i], NULL, &v))
        {
          v = GUINT_TO_POINTER (classes->len);
          g_hash_table_insert (class_ids, (gpointer) labels[i], v);
          g_ptr_array_add (classes, (gpointer) labels[i]);
        }
      d.y[i] = GPOINTER_TO_UINT (v);
    }
  if (classes->len < 2 || classes->len > CLASSIFY_CLASSES_MAX)
    {
      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA,
                   "%u classes: need 2 to %d", classes->len,
                   CLASSIFY_CLASSES_MAX);
      classify_data_clear (&d);
      return NULL;
    }
  d.n_classes = classes->len;
  d.classes = g_new0 (char *, classes->len + 1);
  for (guint c = 0; c < classes->len; c++)
    d.classes[c] = g_strdup (classes->pdata[c]);
  d.intern = g_hash_table_new (g_str_hash, g_str_equal);
  d.names = g_ptr_array_new_with_free_func (g_free);
  d.docs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  for (gsize i = 0; i < n; i++)
    {
      classify_intern_ctx x = { &d, g_array_new (FALSE, FALSE,
                                                 sizeof (guint32)),
                                options->polarity };

      classify_tokens_each (classify_thread_get (), texts[i], -1,
                            classify_intern_emit, &x);
      g_ptr_array_add (d.docs, x.doc);
    }

  rows = g_new (guint, MAX (n, 1));
  K = options->folds;
  if (K > 1 && n >= 2 * (gsize) K)
    {
      /* Stratified folds: shuffle, then deal each class's rows round the
       * folds.  The out-of-fold logits of every row fit the temperature.  */
      g_autoptr (GRand) rng = g_rand_new_with_seed (options->seed ^ 0x5eed);
      g_autofree guint *perm = g_new (guint, n);
      g_autofree guint *fold = g_new (guint, n);
      g_autofree guint *deal = g_new0 (guint, d.n_classes);
      g_autofree guint *held = g_new (guint, n);
      g_autofree double *z = g_new (double, n * d.n_classes);

      for (guint i = 0; i < n; i++)
        perm[i] = i;
      for (guint i = (guint) n; i > 1; i--)
        {
          guint j = (guint) g_rand_int_range (rng, 0, (gint32) i);
          guint tmp = perm[i - 1];

          perm[i - 1] = perm[j];
          perm[j] = tmp;
        }
      for (guint i = 0; i < n; i++)
        fold[perm[i]] = deal[d.y[perm[i]]]++ % K;
      for (guint k = 0; k < K; k++)
        {
          guint nr = 0, nh = 0;
          classify_model *fm;

          for (guint i = 0; i < n; i++)
            if (fold[i] == k)
              held[nh++] = i;
            else
              rows[nr++] = i;
          fm = classify_train_rows (&d, rows, nr);
          for (guint h = 0; h < nh; h++)
            classify_logits (fm, texts[held[h]], -1, NULL,
                             z + (gsize) held[h] * d.n_classes);
          classify_model_free (fm);
        }
      for (guint i = 0; i < n; i++)
        rows[i] = i;
      m = classify_train_rows (&d, rows, (guint) n);
      m->temperature = classify_fit_temperature (z, d.y, (guint) n,
                                                 d.n_classes);
    }
  else
    {
      for (guint i = 0; i < n; i++)
        rows[i] = i;
      m = classify_train_rows (&d, rows, (guint) n);
    }
  classify_data_clear (&d);
  m->label_column = g_strdup (label_column ? label_column : "label");
  if (m->n_features == 0)
    {
      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA,
                   "no features: the texts hold no words");
      classify_model_free (m);
      return NULL;
    }
  return m;
}

classify_model *
classify_train_csv (const char *csv_path, const char *label,
                    const classify_train_options *options, GError **error)
{
  g_autoptr (classify_csv) csv = classify_csv_read (csv_path, label, error);

  if (csv == NULL)
    return NULL;
  return classify_train ((const char *const *) csv->texts->pdata,
                         (const char *const *) csv->labels->pdata,
                         csv->texts->len, label, options, error);
}

/* ----------------------------------------------------------- model files
 *
 *   intake-classify-model 1
 *   label-column <name>
 *   method logreg|nb|cnb|nblr
 *   tokenizer 2
 *   bigrams 0|1
 *   temperature <T>
 *   classes <C>
 *   class\t<name>\t<bias>                 (C lines)
 *   features <F> <unigrams>
 *   u\t<idf>\t<w_1>...\t<w_C>\t<stem>      (unigrams, then)
 *   b\t<idf>\t<w_1>...\t<w_C>\t<stem> <stem>
 *   end
 */

static const char *const classify_method_names[] = { "logreg", "nb", "cnb",
                                                      "nblr" };

gboolean
classify_method_from_name (const char *name, classify_method *out)
{
  for (guint i = 0; i < G_N_ELEMENTS (classify_method_names); i++)
    if (strcmp (name, classify_method_names[i]) == 0)
      {
        *out = (classify_method) i;
        return TRUE;
      }
  return FALSE;
}

static void
classify_put_num (GString *s, double v, const char *fmt)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append (s, g_ascii_formatd (buf, sizeof buf, fmt, v));
}

gboolean
classify_model_save (const classify_model *m, const char *path,
                     GError **error)
{
  g_autoptr (GString) s = g_string_sized_new (64 + (gsize) m->n_features
                                                      * (16 + 14 * m->n_classes));
  g_autoptr (GError) e = NULL;

  g_string_append_printf (s, CLASSIFY_FILE_MAGIC " %d\nlabel-column %s\n"
                          "method %s\ntokenizer %d\nbigrams %d\n"
                          "temperature ",
                          CLASSIFY_FILE_VERSION, m->label_column,
                          classify_method_names[m->method],
                          CLASSIFY_TOKENIZER_VERSION, m->bigrams ? 1 : 0);
  classify_put_num (s, m->temperature, "%.17g");
  g_string_append_printf (s, "\nclasses %u\n", m->n_classes);
  for (guint c = 0; c < m->n_classes; c++)
    {
      g_string_append_printf (s, "class\t%s\t", m->classes[c]);
      classify_put_num (s, m->bias[c], "%.17g");
      g_string_append_c (s, '\n');
    }
  g_string_append_printf (s, "features %u %u\n", m->n_features,
                          m->n_unigrams);
  for (guint f = 0; f < m->n_features; f++)
    {
      g_string_append (s, f < m->n_unigrams ? "u\t" : "b\t");
      classify_put_num (s, m->idf[f], "%.9g");
      for (guint c = 0; c < m->n_classes; c++)
        {
          g_string_append_c (s, '\t');
          classify_put_num (s, m->w[(gsize) f * m->n_classes + c], "%.9g");
        }
      g_string_append_printf (s, "\t%s\n", m->names[f]);
    }
  g_string_append (s, "end\n");
  if (!g_file_set_contents_full (path, s->str, (gssize) s->len,
                                 G_FILE_SET_CONTENTS_CONSISTENT
                                 | G_FILE_SET_CONTENTS_DURABLE,
                                 0644, &e))
    {
      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_IO, "%s",
                   e->message);
      return FALSE;
    }
  return TRUE;
}

typedef struct {
  const char *path;
  char *p, *end;
  guint line;
  GError **error;
} classify_reader;

/* The next line, NUL-terminated in place; NULL at the end.  */
static char *
classify_reader_line (classify_reader *r)
{
  char *s = r->p, *nl;

  if (r->p >= r->end)
    return NULL;
  nl = memchr (r->p, '\n', (gsize) (r->end - r->p));
  if (nl == NULL)
    nl = r->end;
  *nl = '\0';
  r->p = nl + 1;
  r->line++;
  return s;
}

static gboolean classify_reader_fail (classify_reader *r, const char *fmt,
                                      ...) G_GNUC_PRINTF (2, 3);

static gboolean
classify_reader_fail (classify_reader *r, const char *fmt, ...)
{
  g_autofree char *why = NULL;
  va_list ap;

  va_start (ap, fmt);
  why = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (r->error, CLASSIFY_ERROR, CLASSIFY_ERROR_MODEL, "%s:%u: %s",
               r->path, r->line, why);
  return FALSE;
}

/* The line "@key <value>": (transfer none) value, or NULL after an
 * error.  */
static const char *
classify_reader_keyed (classify_reader *r, const char *key)
{
  char *s = classify_reader_line (r);
  gsize k = strlen (key);

  if (s == NULL)
    {
      r->line++;
      classify_reader_fail (r, "file ends before \"%s\"", key);
      return NULL;
    }
  if (strncmp (s, key, k) != 0 || s[k] != ' ' || s[k + 1] == '\0')
    {
      classify_reader_fail (r, "expected \"%s <value>\"", key);
      return NULL;
    }
  return s + k + 1;
}

static gboolean
classify_parse_uint (const char *s, guint64 max, guint64 *out)
{
  return g_ascii_string_to_unsigned (s, 10, 0, max, out, NULL);
}

static gboolean
classify_parse_double (const char *s, const char *stop, double *out)
{
  char *e = NULL;

  if (s == stop || *s == '\0' || g_ascii_isspace (*s))
    return FALSE;
  *out = g_ascii_strtod (s, &e);
  return e == stop && isfinite (*out);
}

classify_model *
classify_model_load (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  g_autoptr (classify_model) m = NULL;
  classify_reader r = { .path = path, .error = error };
  const char *v;
  char *s;
  gsize len;
  guint64 num, C, F, U;
  GStatBuf st;

  if (g_stat (path, &st) == 0 && st.st_size > CLASSIFY_MODEL_BYTES_MAX)
    {
      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_MODEL,
                   "%s: larger than %d bytes", path,
                   CLASSIFY_MODEL_BYTES_MAX);
      return NULL;
    }
  if (!g_file_get_contents (path, &data, &len, NULL))
    {
      int e = errno;

      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_IO,
                   "%s: cannot read: %s", path, g_strerror (e));
      return NULL;
    }
  if (memchr (data, '\0', len) != NULL)
    {
      g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_MODEL,
                   "%s:1: NUL byte in a model file", path);
      return NULL;
    }
  r.p = data;
  r.end = data + len;

  if ((v = classify_reader_keyed (&r, CLASSIFY_FILE_MAGIC)) == NULL)
    return NULL;
  if (!classify_parse_uint (v, G_MAXUINT32, &num))
    return classify_reader_fail (&r, "bad version \"%s\"", v), NULL;
  if (num != CLASSIFY_FILE_VERSION)
    return classify_reader_fail (&r, "version %s, this binary reads %d", v,
                                 CLASSIFY_FILE_VERSION), NULL;
  if ((v = classify_reader_keyed (&r, "label-column")) == NULL)
    return NULL;
  {
    const char *why = NULL;
    g_autofree char *col = g_strdup (v);

    if (!classify_label_ok (col, &why))
      return classify_reader_fail (&r, "%s", why), NULL;
    if ((v = classify_reader_keyed (&r, "method")) == NULL)
      return NULL;
    for (num = 0; num < G_N_ELEMENTS (classify_method_names); num++)
      if (strcmp (v, classify_method_names[num]) == 0)
        break;
    if (num == G_N_ELEMENTS (classify_method_names))
      return classify_reader_fail (&r, "unknown method"), NULL;
    {
      guint64 method = num, bigrams;
      double T;

      if ((v = classify_reader_keyed (&r, "tokenizer")) == NULL)
        return NULL;
      if (!classify_parse_uint (v, G_MAXUINT32, &num)
          || num != CLASSIFY_TOKENIZER_VERSION)
        return classify_reader_fail (&r, "tokenizer %s, this binary has %d",
                                     v, CLASSIFY_TOKENIZER_VERSION), NULL;
      if ((v = classify_reader_keyed (&r, "bigrams")) == NULL)
        return NULL;
      if (!classify_parse_uint (v, 1, &bigrams))
        return classify_reader_fail (&r, "bigrams must be 0 or 1"), NULL;
      if ((v = classify_reader_keyed (&r, "temperature")) == NULL)
        return NULL;
      if (!classify_parse_double (v, v + strlen (v), &T) || T <= 0)
        return classify_reader_fail (&r, "bad temperature"), NULL;
      if ((v = classify_reader_keyed (&r, "classes")) == NULL)
        return NULL;
      if (!classify_parse_uint (v, CLASSIFY_CLASSES_MAX, &C) || C < 2)
        return classify_reader_fail (&r, "classes must be 2 to %d",
                                     CLASSIFY_CLASSES_MAX), NULL;
      m = classify_model_new ((guint) C);
      m->label_column = g_steal_pointer (&col);
      m->method = (classify_method) method;
      m->bigrams = bigrams != 0;
      m->temperature = T;
    }
  }
  for (guint c = 0; c < C; c++)
    {
      char *tab, *name;
      const char *why = NULL;

      s = classify_reader_line (&r);
      if (s == NULL)
        return r.line++, classify_reader_fail (&r, "file ends in the "
                                               "classes"), NULL;
      if (strncmp (s, "class\t", 6) != 0
          || (tab = strchr (s + 6, '\t')) == NULL)
        return classify_reader_fail (&r, "expected class\\t<name>\\t<bias>"),
               NULL;
      name = s + 6;
      *tab = '\0';
      if (name[0] == '\0' || !classify_label_ok (name, &why))
        return classify_reader_fail (&r, "bad class name%s%s",
                                     why ? ": " : "", why ? why : ""), NULL;
      for (guint k = 0; k < c; k++)
        if (strcmp (m->classes[k], name) == 0)
          return classify_reader_fail (&r, "class \"%s\" twice", name), NULL;
      if (!classify_parse_double (tab + 1, tab + 1 + strlen (tab + 1),
                                  &m->bias[c]))
        return classify_reader_fail (&r, "bad bias"), NULL;
      m->classes[c] = g_strdup (name);
    }
  if ((v = classify_reader_keyed (&r, "features")) == NULL)
    return NULL;
  {
    g_auto (GStrv) fu = g_strsplit (v, " ", 3);

    if (g_strv_length (fu) != 2
        || !classify_parse_uint (fu[0], CLASSIFY_FEATURES_MAX, &F)
        || !classify_parse_uint (fu[1], F, &U) || F == 0)
      return classify_reader_fail (&r, "expected \"features <1 to %d> "
                                   "<unigrams>\"", CLASSIFY_FEATURES_MAX),
             NULL;
  }
  m->names = g_new0 (char *, F);
  m->idf = g_new (float, F);
  m->w = g_new (float, F * C);
  classify_map_init (&m->bigram_ids, (gsize) (F - U) * 2 + 16);
  for (guint f = 0; f < F; f++)
    {
      gboolean uni = f < U;
      char *q, *e;
      double x;

      s = classify_reader_line (&r);
      if (s == NULL)
        return r.line++, classify_reader_fail (&r, "file ends after %u of "
                                               "%u features", f,
                                               (guint) F), NULL;
      if (s[0] != (uni ? 'u' : 'b') || s[1] != '\t')
        return classify_reader_fail (&r, "expected a %s line",
                                     uni ? "unigram (u)" : "bigram (b)"),
               NULL;
      q = s + 2;
      for (guint k = 0; k <= C; k++)
        {
          e = strchr (q, '\t');
          if (e == NULL || !classify_parse_double (q, e, &x))
            return classify_reader_fail (&r, "expected %u numbers",
                                         (guint) C + 1), NULL;
          if (k == 0)
            {
              if (x <= 0)
                return classify_reader_fail (&r, "idf must be > 0"), NULL;
              m->idf[f] = (float) x;
            }
          else
            m->w[(gsize) f * C + k - 1] = (float) x;
          q = e + 1;
        }
      m->n_features = f + 1;   /* names[f] is freed from here on */
      if (uni)
        {
          if (*q == '\0' || strchr (q, ' ') || strchr (q, '\t')
              || strlen (q) > 3 * CLASSIFY_TOKEN_BYTES_MAX
              || !g_utf8_validate (q, -1, NULL))
            return classify_reader_fail (&r, "bad unigram"), NULL;
          {
            gsize qn = strlen (q);
            guint64 h = classify_hash (q, qn);

            if (classify_strtab_find (&m->vocab, q, qn, h, TRUE) != NULL)
              return classify_reader_fail (&r, "feature \"%s\" twice", q),
                     NULL;
            m->names[f] = g_strdup (q);
            classify_strtab_add (&m->vocab, m->names[f], qn, h)->val = f;
          }
        }
      else
        {
          char *sp = strchr (q, ' ');
          const classify_strent *a, *b;
          guint32 *slot;

          if (sp == NULL)
            return classify_reader_fail (&r, "bad bigram"), NULL;
          *sp = '\0';
          a = classify_strtab_find (&m->vocab, q, (gsize) (sp - q),
                                    classify_hash (q, (gsize) (sp - q)), TRUE);
          b = classify_strtab_find (&m->vocab, sp + 1, strlen (sp + 1),
                                    classify_hash (sp + 1, strlen (sp + 1)),
                                    TRUE);
          *sp = ' ';
          if (a == NULL || b == NULL)
            return classify_reader_fail (&r, "bigram of unknown unigrams"),
                   NULL;
          m->names[f] = g_strdup (q);
          slot = classify_map_slot (&m->bigram_ids,
                                    classify_map_key (a->val, b->val));
          if (*slot != CLASSIFY_NONE)
            return classify_reader_fail (&r, "feature \"%s\" twice", q), NULL;
          *slot = f;
        }
    }
  m->n_unigrams = (guint) U;
  s = classify_reader_line (&r);
  if (s == NULL || strcmp (s, "end") != 0)
    return (s == NULL ? r.line++ : 0),
           classify_reader_fail (&r, "expected \"end\""), NULL;
  if (r.p < r.end)
    return r.line++, classify_reader_fail (&r, "text after \"end\""), NULL;
  return g_steal_pointer (&m);
}

/* ------------------------------------------------------------ evaluation */

gboolean
classify_eval (const classify_model *m, const char *const *texts,
               const char *const *gold, gsize n, const char *const *map,
               GString *report, double *macro_f1, GError **error)
{
  g_autoptr (GHashTable) remap = g_hash_table_new_full (g_str_hash,
                                                        g_str_equal, g_free,
                                                        g_free);
  g_autoptr (GHashTable) index = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  g_autofree guint64 *conf = NULL;
  g_autofree guint *gi = g_new (guint, MAX (n, 1));
  g_autofree guint *pi = g_new (guint, MAX (n, 1));
  g_autofree double *pconf = g_new (double, MAX (n, 1));
  double logloss = 0, macro = 0, ece = 0;
  guint64 correct = 0, n_ll = 0;
  guint L, width = 9, n_macro = 0;
  guint bin_n[10] = { 0 }, bin_ok[10] = { 0 };
  double bin_conf[10] = { 0 };

  for (guint i = 0; map != NULL && map[i] != NULL; i++)
    {
      const char *eq = strchr (map[i], '=');

      if (eq == NULL || eq == map[i] || eq[1] == '\0')
        {
          g_set_error (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA,
                       "label map \"%s\": expected from=to", map[i]);
          return FALSE;
        }
      g_hash_table_insert (remap, g_strndup (map[i], (gsize) (eq - map[i])),
                           g_strdup (eq + 1));
    }
  for (guint c = 0; c < m->n_classes; c++)
    {
      g_hash_table_insert (index, m->classes[c], GUINT_TO_POINTER (c));
      g_ptr_array_add (names, m->classes[c]);
    }
  for (gsize i = 0; i < n; i++)
    {
      const char *g = gold[i];
      const char *to = g_hash_table_lookup (remap, g);
      gpointer v;
      double p[CLASSIFY_CLASSES_MAX];
      guint best = 0;

      if (to != NULL)
        g = to;
      if (!g_hash_table_lookup_extended (index, g, NULL, &v))
        {
          v = GUINT_TO_POINTER (names->len);
          g_hash_table_insert (index, (gpointer) g, v);
          g_ptr_array_add (names, (gpointer) g);
        }
      gi[i] = GPOINTER_TO_UINT (v);
      classify_logits (m, texts[i], -1, NULL, p);
      classify_softmax (p, m->n_classes, m->temperature);
      for (guint c = 1; c < m->n_classes; c++)
        if (p[c] > p[best])
          best = c;
      pi[i] = best;
      pconf[i] = p[best];
      correct += gi[i] == best;
      if (gi[i] < m->n_classes)
        {
          logloss -= log (MAX (p[gi[i]], 1e-15));
          n_ll++;
        }
      {
        guint b = MIN ((guint) (p[best] * 10), 9);

        bin_n[b]++;
        bin_ok[b] += gi[i] == best;
        bin_conf[b] += p[best];
      }
    }
  L = names->len;
  conf = g_new0 (guint64, (gsize) L * L);
  for (gsize i = 0; i < n; i++)
    conf[(gsize) gi[i] * L + pi[i]]++;
  for (guint b = 0; b < 10; b++)
    if (bin_n[b] > 0)
      ece += fabs ((double) bin_ok[b] - bin_conf[b]) / (double) n;
  for (guint c = 0; c < L; c++)
    width = MAX (width, (guint) strlen (names->pdata[c]));

  g_string_append_printf (report, "rows        %" G_GSIZE_FORMAT "\n", n);
  g_string_append_printf (report, "accuracy    %.4f (%" G_GUINT64_FORMAT
                          "/%" G_GSIZE_FORMAT ")\n",
                          n ? (double) correct / n : 0.0, correct, n);
  {
    g_autoptr (GString) rows = g_string_new (NULL);

    g_string_append_printf (rows, "%-*s %9s %9s %9s %9s\n", (int) width,
                            "class", "precision", "recall", "f1",
                            "support");
    for (guint c = 0; c < L; c++)
      {
        guint64 tp = conf[(gsize) c * L + c], sup = 0, pred = 0;
        double P, R, F1;

        for (guint k = 0; k < L; k++)
          {
            sup += conf[(gsize) c * L + k];
            pred += conf[(gsize) k * L + c];
          }
        if (sup == 0 && pred == 0)
          {
            g_string_append_printf (rows, "%-*s %9s %9s %9s %9d\n",
                                    (int) width, (char *) names->pdata[c],
                                    "-", "-", "-", 0);
            continue;
          }
        P = pred ? (double) tp / pred : 0;
        R = sup ? (double) tp / sup : 0;
        F1 = P + R > 0 ? 2 * P * R / (P + R) : 0;
        macro += F1;
        n_macro++;
        g_string_append_printf (rows, "%-*s %9.4f %9.4f %9.4f %9"
                                G_GUINT64_FORMAT "\n", (int) width,
                                (char *) names->pdata[c], P, R, F1, sup);
      }
    macro = n_macro ? macro / n_macro : 0;
    g_string_append_printf (report, "macro-F1    %.4f (over %u classes)\n",
                            macro, n_macro);
    g_string_append_printf (report, "log-loss    %.4f (over %" G_GUINT64_FORMAT
                            " rows with a class the model knows)\n",
                            n_ll ? logloss / n_ll : 0.0, n_ll);
    g_string_append_printf (report, "ECE         %.4f (10 bins of top "
                            "score)\n", ece);
    g_string_append_printf (report, "temperature %.4f\n\n", m->temperature);
    g_string_append (report, rows->str);
  }
  g_string_append (report, "\nconfusion (rows gold, columns predicted)\n");
  g_string_append_printf (report, "%-*s", (int) width, "");
  for (guint c = 0; c < L; c++)
    g_string_append_printf (report, " %*s", (int) MAX (strlen (names->pdata[c]), 6),
                            (char *) names->pdata[c]);
  g_string_append_c (report, '\n');
  for (guint r = 0; r < L; r++)
    {
      g_string_append_printf (report, "%-*s", (int) width,
                              (char *) names->pdata[r]);
      for (guint c = 0; c < L; c++)
        g_string_append_printf (report, " %*" G_GUINT64_FORMAT,
                                (int) MAX (strlen (names->pdata[c]), 6),
                                conf[(gsize) r * L + c]);
      g_string_append_c (report, '\n');
    }
  if (macro_f1 != NULL)
    *macro_f1 = macro;
  return TRUE;
}

gboolean
classify_eval_csv (const classify_model *m, const char *csv_path,
                   const char *label, const char *const *map,
                   GString *report, double *macro_f1, GError **error)
{
  g_autoptr (classify_csv) csv = classify_csv_read (csv_path, label, error);

  if (csv == NULL)
    return FALSE;
  g_string_append_printf (report, "file        %s (column %s; %u rows "
                          "without a label skipped)\n", csv_path, label,
                          csv->skipped);
  return classify_eval (m, (const char *const *) csv->texts->pdata,
                        (const char *const *) csv->labels->pdata,
                        csv->texts->len, map, report, macro_f1, error);
}
