/*
 * parser_headers.c - From, Subject and Message-ID with GMime 3.
 *
 * Owns: nothing beyond the call.  The raw bytes are never re-serialised
 * (GMime issue 165); we only read from the parsed tree.
 */
#include "parser/parser_headers.h"

#include <string.h>

#include <gmime/gmime.h>

/* Longest header value we keep (bytes, after cleaning).  */
#define PARSER_HEADER_VALUE_MAX 998

void
parser_init (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      g_mime_init ();
      g_once_init_leave (&once, 1);
    }
}

char *
parser_clean_text (const char *s, gssize len, gsize max)
{
  g_autofree char *valid = NULL;
  GString *out;

  if (s == NULL)
    return NULL;
  valid = g_utf8_make_valid (s, len);
  out = g_string_sized_new (strlen (valid));
  for (const char *p = valid; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      const char *next = g_utf8_next_char (p);

      if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)
          || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
        c = ' ';
      if (out->len + (gsize) (next - p) > max)
        break;
      g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}

parser_headers *
parser_headers_parse (GBytes *raw)
{
  parser_headers *h = g_new0 (parser_headers, 1);
  GMimeStream *stream;
  GMimeParser *parser;
  GMimeMessage *msg;
  gsize len;
  const guint8 *data = g_bytes_get_data (raw, &len);
  InternetAddressList *from;
  const char *v;

  parser_init ();
  stream = g_mime_stream_mem_new_with_buffer ((const char *) data, len);
  parser = g_mime_parser_new_with_stream (stream);
  msg = g_mime_parser_construct_message (parser, NULL);
  g_object_unref (parser);
  g_object_unref (stream);
  if (msg == NULL)
    return h;
  h->parsed = TRUE;

  from = g_mime_message_get_from (msg);
  for (int i = 0; from && i < internet_address_list_length (from); i++)
    {
      InternetAddress *a = internet_address_list_get_address (from, i);
      if (INTERNET_ADDRESS_IS_MAILBOX (a))
        {
          const char *addr = internet_address_mailbox_get_addr (
              INTERNET_ADDRESS_MAILBOX (a));
          const char *name = internet_address_get_name (a);
          if (addr && *addr)
            h->from_addr = parser_clean_text (addr, -1, 254);
          if (name && *name)
            h->from_name = parser_clean_text (name, -1,
                                              PARSER_HEADER_VALUE_MAX);
          break;
        }
    }
  v = g_mime_message_get_subject (msg);
  if (v != NULL)
    h->subject = parser_clean_text (v, -1, PARSER_HEADER_VALUE_MAX);
  v = g_mime_message_get_message_id (msg);
  if (v != NULL && *v)
    h->message_id = parser_clean_text (v, -1, PARSER_HEADER_VALUE_MAX);
  g_object_unref (msg);
  return h;
}

void
parser_headers_free (parser_headers *h)
{
  if (h == NULL)
    return;
  g_free (h->from_addr);
  g_free (h->from_name);
  g_free (h->subject);
  g_free (h->message_id);
  g_free (h);
}
