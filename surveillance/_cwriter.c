/* Fast row sink for the audit trail's writer process (module surveillance._cwriter).
 *
 * A Writer owns one SQLite connection with a prepared INSERT per chained table. Its
 * insert_* methods take a batch's flat lists of values (see
 * surveillance.audit_rows.split_records) and cut them into rows. They bind each value
 * straight into the prepared statement and append each row's hash-chain encoding to a
 * buffer. That encoding is the row as a tuple in marshal format 2, the same bytes as
 * marshal.dumps(row, 2), and its CRC-32, the same number as zlib.crc32.
 * surveillance.audit_native drives it. The pure-Python BatchWriter writes the same rows
 * with the same encoding when this module is not built.
 *
 * Values are bound as CPython 3.11's sqlite3 module binds them: None as NULL, int (bool
 * included) as INTEGER, float as REAL, str as UTF-8 TEXT, bytes as BLOB. Errors raise the
 * sqlite3 module's exception classes, chosen by the result code as sqlite3 chooses them.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <marshal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

/* marshal's type codes for format version 2 (Python/marshal.c). */
#define M_NONE 'N'
#define M_FALSE 'F'
#define M_TRUE 'T'
#define M_INT 'i'
#define M_LONG 'l'
#define M_BINARY_FLOAT 'g'
#define M_STRING 's'
#define M_UNICODE 'u'
#define M_TUPLE '('
#define MARSHAL_VERSION 2

/* The widest row of the audit schema has 29 columns, so this leaves room. */
#define MAX_COLUMNS 64

/* ------------------------------------------------------------------ byte buffer */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buffer;

static int
buffer_reserve(Buffer *buffer, size_t extra)
{
    if (buffer->len + extra <= buffer->cap) {
        return 0;
    }
    size_t cap = buffer->cap ? buffer->cap : 65536;
    while (cap < buffer->len + extra) {
        cap *= 2;
    }
    char *data = PyMem_Realloc(buffer->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data;
    buffer->cap = cap;
    return 0;
}

static int
buffer_append(Buffer *buffer, const void *bytes, size_t size)
{
    if (buffer_reserve(buffer, size) < 0) {
        return -1;
    }
    memcpy(buffer->data + buffer->len, bytes, size);
    buffer->len += size;
    return 0;
}

/* Callers reserve room first. */
static inline void
put_byte(Buffer *buffer, char byte)
{
    buffer->data[buffer->len++] = byte;
}

static inline void
put_le32(Buffer *buffer, uint32_t value)
{
    unsigned char *out = (unsigned char *)buffer->data + buffer->len;
    out[0] = (unsigned char)value;
    out[1] = (unsigned char)(value >> 8);
    out[2] = (unsigned char)(value >> 16);
    out[3] = (unsigned char)(value >> 24);
    buffer->len += 4;
}

static void
buffer_free(Buffer *buffer)
{
    PyMem_Free(buffer->data);
    buffer->data = NULL;
    buffer->len = buffer->cap = 0;
}

/* ------------------------------------------------------------------ CRC-32 */

/* CRC-32 with the reflected polynomial 0xEDB88320, as zlib.crc32 computes it, eight bytes
 * a step (slicing by 8): a row of a few hundred bytes would otherwise cost about as much
 * as marshalling it. */
static uint32_t crc_table[8][256];

static void
crc_init(void)
{
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        crc_table[0][byte] = crc;
    }
    for (uint32_t byte = 0; byte < 256; byte++) {
        for (int slice = 1; slice < 8; slice++) {
            uint32_t previous = crc_table[slice - 1][byte];
            crc_table[slice][byte] = (previous >> 8) ^ crc_table[0][previous & 0xff];
        }
    }
}

static uint32_t
crc32_bytes(const unsigned char *data, size_t size)
{
    uint32_t crc = 0xFFFFFFFFu;
    while (size >= 8) {
        uint32_t low = crc ^ ((uint32_t)data[0] | (uint32_t)data[1] << 8 |
                              (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24);
        uint32_t high = (uint32_t)data[4] | (uint32_t)data[5] << 8 |
                        (uint32_t)data[6] << 16 | (uint32_t)data[7] << 24;
        crc = crc_table[7][low & 0xff] ^ crc_table[6][(low >> 8) & 0xff] ^
              crc_table[5][(low >> 16) & 0xff] ^ crc_table[4][low >> 24] ^
              crc_table[3][high & 0xff] ^ crc_table[2][(high >> 8) & 0xff] ^
              crc_table[1][(high >> 16) & 0xff] ^ crc_table[0][high >> 24];
        data += 8;
        size -= 8;
    }
    while (size--) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *data++) & 0xff];
    }
    return crc ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------------------ marshal format 2 */

/* Append marshal.dumps(value, 2) for a value of another type: marshal.c's own encoder,
 * which raises ValueError for a type it cannot encode (an enum member, for one). */
static int
marshal_other(Buffer *buffer, PyObject *value)
{
    PyObject *encoded = PyMarshal_WriteObjectToString(value, MARSHAL_VERSION);
    if (encoded == NULL) {
        return -1;
    }
    int result = buffer_append(buffer, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return result;
}

/* An int beyond 32 bits: its absolute value in base 2**15 digits, least significant
 * first, the digit count negated for a negative number (marshal.c's w_PyLong). */
static int
marshal_long(Buffer *buffer, long long value)
{
    unsigned long long magnitude =
        value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    uint16_t digits[5];
    int count = 0;
    while (magnitude != 0) {
        digits[count++] = (uint16_t)(magnitude & 0x7fff);
        magnitude >>= 15;
    }
    if (buffer_reserve(buffer, 5 + 2 * (size_t)count) < 0) {
        return -1;
    }
    put_byte(buffer, M_LONG);
    put_le32(buffer, (uint32_t)(int32_t)(value < 0 ? -count : count));
    for (int index = 0; index < count; index++) {
        put_byte(buffer, (char)(digits[index] & 0xff));
        put_byte(buffer, (char)(digits[index] >> 8));
    }
    return 0;
}

static int
marshal_sized(Buffer *buffer, char code, const char *bytes, Py_ssize_t size)
{
    if (size > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "unmarshallable object: value longer than 2 GiB");
        return -1;
    }
    if (buffer_reserve(buffer, 5 + (size_t)size) < 0) {
        return -1;
    }
    put_byte(buffer, code);
    put_le32(buffer, (uint32_t)size);
    memcpy(buffer->data + buffer->len, bytes, (size_t)size);
    buffer->len += (size_t)size;
    return 0;
}

/* Append marshal.dumps(value, 2) without building a bytes object for the common types. */
static int
marshal_value(Buffer *buffer, PyObject *value)
{
    if (value == Py_None || value == Py_False || value == Py_True) {
        if (buffer_reserve(buffer, 1) < 0) {
            return -1;
        }
        char code = M_FALSE;
        if (value == Py_None) {
            code = M_NONE;
        }
        else if (value == Py_True) {
            code = M_TRUE;
        }
        put_byte(buffer, code);
        return 0;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return marshal_other(buffer, value);
        }
        if (number < INT32_MIN || number > INT32_MAX) {
            return marshal_long(buffer, number);
        }
        if (buffer_reserve(buffer, 5) < 0) {
            return -1;
        }
        put_byte(buffer, M_INT);
        put_le32(buffer, (uint32_t)(int32_t)number);
        return 0;
    }
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(value, &size);
        if (utf8 == NULL) {
            /* Lone surrogates: marshal encodes them with surrogatepass. */
            PyErr_Clear();
            return marshal_other(buffer, value);
        }
        return marshal_sized(buffer, M_UNICODE, utf8, size);
    }
    if (PyBytes_CheckExact(value)) {
        return marshal_sized(buffer, M_STRING, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    if (PyFloat_CheckExact(value)) {
        if (buffer_reserve(buffer, 9) < 0) {
            return -1;
        }
        put_byte(buffer, M_BINARY_FLOAT);
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), buffer->data + buffer->len, 1) < 0) {
            return -1;
        }
        buffer->len += 8;
        return 0;
    }
    return marshal_other(buffer, value);
}

/* ------------------------------------------------------------------ JSON */

static const char hex_digits[] = "0123456789abcdef";

/* Append a str as JSON with json.dumps's default ensure_ascii=True: printable ASCII as
 * it is, the two-character escapes json uses, and \uXXXX (lowercase, a surrogate pair
 * above U+FFFF) for everything else. */
static int
json_string(Buffer *buffer, PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* At most 12 bytes a code point (a surrogate pair), plus the quotes. */
    if (buffer_reserve(buffer, 12 * (size_t)length + 2) < 0) {
        return -1;
    }
    put_byte(buffer, '"');
    for (Py_ssize_t index = 0; index < length; index++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, index);
        if (c >= ' ' && c <= '~' && c != '\\' && c != '"') {
            put_byte(buffer, (char)c);
            continue;
        }
        put_byte(buffer, '\\');
        switch (c) {
        case '\\': put_byte(buffer, '\\'); continue;
        case '"': put_byte(buffer, '"'); continue;
        case '\b': put_byte(buffer, 'b'); continue;
        case '\f': put_byte(buffer, 'f'); continue;
        case '\n': put_byte(buffer, 'n'); continue;
        case '\r': put_byte(buffer, 'r'); continue;
        case '\t': put_byte(buffer, 't'); continue;
        }
        if (c >= 0x10000) {
            Py_UCS4 v = c - 0x10000;
            Py_UCS4 high = 0xd800 | ((v >> 10) & 0x3ff);
            put_byte(buffer, 'u');
            put_byte(buffer, hex_digits[(high >> 12) & 0xf]);
            put_byte(buffer, hex_digits[(high >> 8) & 0xf]);
            put_byte(buffer, hex_digits[(high >> 4) & 0xf]);
            put_byte(buffer, hex_digits[high & 0xf]);
            put_byte(buffer, '\\');
            c = 0xdc00 | (v & 0x3ff);
        }
        put_byte(buffer, 'u');
        put_byte(buffer, hex_digits[(c >> 12) & 0xf]);
        put_byte(buffer, hex_digits[(c >> 8) & 0xf]);
        put_byte(buffer, hex_digits[(c >> 4) & 0xf]);
        put_byte(buffer, hex_digits[c & 0xf]);
    }
    put_byte(buffer, '"');
    return 0;
}

/* Append a value as json.dumps writes it. Return 1 for a type left to Python (float,
 * a big int, anything not a JSON scalar), 0 when done, -1 on error. */
static int
json_value(Buffer *buffer, PyObject *value)
{
    if (value == Py_None) {
        return buffer_append(buffer, "null", 4);
    }
    if (value == Py_True) {
        return buffer_append(buffer, "true", 4);
    }
    if (value == Py_False) {
        return buffer_append(buffer, "false", 5);
    }
    if (PyUnicode_CheckExact(value)) {
        return json_string(buffer, value);
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return 1;
        }
        char digits[24];
        int size = snprintf(digits, sizeof digits, "%lld", number);
        return buffer_append(buffer, digits, (size_t)size);
    }
    return 1;
}

/* ------------------------------------------------------------------ errors */

typedef struct {
    PyObject *database_error;
    PyObject *operational_error;
    PyObject *integrity_error;
    PyObject *internal_error;
    PyObject *programming_error;
    PyObject *interface_error;
    PyObject *data_error;
} ModuleState;

static ModuleState state;

/* The sqlite3 module's class for a result code, as CPython 3.11's _pysqlite_seterror. */
static PyObject *
error_class(int code)
{
    switch (code & 0xff) {
    case SQLITE_INTERNAL:
    case SQLITE_NOTFOUND:
        return state.internal_error;
    case SQLITE_NOMEM:
        return PyExc_MemoryError;
    case SQLITE_ERROR:
    case SQLITE_PERM:
    case SQLITE_ABORT:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_INTERRUPT:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_EMPTY:
    case SQLITE_SCHEMA:
        return state.operational_error;
    case SQLITE_CORRUPT:
        return state.database_error;
    case SQLITE_TOOBIG:
        return state.data_error;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
        return state.integrity_error;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return state.interface_error;
    default:
        return state.database_error;
    }
}

/* Raise the sqlite3 exception for the connection's last error; return -1. */
static int
set_sqlite_error(sqlite3 *db, int code)
{
    int extended = db != NULL ? sqlite3_extended_errcode(db) : code;
    const char *message = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    PyObject *cls = error_class(extended);
    PyObject *error = PyObject_CallFunction(cls, "s", message);
    if (error == NULL) {
        return -1;
    }
    if (cls != PyExc_MemoryError) {
        PyObject *number = PyLong_FromLong(extended);
        if (number == NULL || PyObject_SetAttrString(error, "sqlite_errorcode", number) < 0) {
            Py_XDECREF(number);
            Py_DECREF(error);
            return -1;
        }
        Py_DECREF(number);
    }
    PyErr_SetObject(cls, error);
    Py_DECREF(error);
    return -1;
}

/* ------------------------------------------------------------------ binding */

static int
bind_value(sqlite3 *db, sqlite3_stmt *statement, int position, PyObject *value)
{
    int rc;
    if (value == Py_None) {
        rc = sqlite3_bind_null(statement, position);
    }
    else if (PyLong_Check(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError,
                            "Python int too large to convert to SQLite INTEGER");
            return -1;
        }
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        rc = sqlite3_bind_int64(statement, position, number);
    }
    else if (PyFloat_Check(value)) {
        rc = sqlite3_bind_double(statement, position, PyFloat_AS_DOUBLE(value));
    }
    else if (PyUnicode_Check(value)) {
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(value, &size);
        if (utf8 == NULL) {
            return -1;
        }
        if (size > INT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "string longer than INT_MAX bytes");
            return -1;
        }
        /* The str outlives the step: the caller keeps a reference until sqlite3_reset. */
        rc = sqlite3_bind_text(statement, position, utf8, (int)size, SQLITE_STATIC);
    }
    else if (PyBytes_Check(value)) {
        if (PyBytes_GET_SIZE(value) > INT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "BLOB longer than INT_MAX bytes");
            return -1;
        }
        rc = sqlite3_bind_blob(statement, position, PyBytes_AS_STRING(value),
                               (int)PyBytes_GET_SIZE(value), SQLITE_STATIC);
    }
    else {
        PyErr_Format(state.programming_error,
                     "Error binding parameter %d: type '%s' is not supported",
                     position, Py_TYPE(value)->tp_name);
        return -1;
    }
    if (rc != SQLITE_OK) {
        return set_sqlite_error(db, rc);
    }
    return 0;
}

/* ------------------------------------------------------------------ Writer */

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt **inserts;
    Py_ssize_t insert_count;
    Buffer encoded;  /* marshal encoding of every row since take_encoded(), end to end */
    Buffer crcs;     /* CRC-32 of each encoded row, 4 bytes little-endian */
    Buffer json;     /* scratch space for one command's JSON */
} Writer;

static void
writer_close_connection(Writer *self)
{
    if (self->inserts != NULL) {
        for (Py_ssize_t index = 0; index < self->insert_count; index++) {
            sqlite3_finalize(self->inserts[index]);
        }
        PyMem_Free(self->inserts);
        self->inserts = NULL;
        self->insert_count = 0;
    }
    if (self->db != NULL) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
}

static void
writer_dealloc(Writer *self)
{
    writer_close_connection(self);
    buffer_free(&self->encoded);
    buffer_free(&self->crcs);
    buffer_free(&self->json);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
writer_init(Writer *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"path", "inserts", NULL};
    const char *path;
    PyObject *inserts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sO!:Writer", keywords, &path,
                                     &PyTuple_Type, &inserts)) {
        return -1;
    }
    writer_close_connection(self);
    int rc = sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_sqlite_error(self->db, rc);
        writer_close_connection(self);
        return -1;
    }
    /* The sqlite3 module's default timeout of 5 seconds. */
    sqlite3_busy_timeout(self->db, 5000);

    Py_ssize_t count = PyTuple_GET_SIZE(inserts);
    self->inserts = PyMem_Calloc(count > 0 ? (size_t)count : 1, sizeof(sqlite3_stmt *));
    if (self->inserts == NULL) {
        PyErr_NoMemory();
        writer_close_connection(self);
        return -1;
    }
    self->insert_count = count;
    for (Py_ssize_t index = 0; index < count; index++) {
        const char *sql = PyUnicode_AsUTF8(PyTuple_GET_ITEM(inserts, index));
        if (sql == NULL) {
            writer_close_connection(self);
            return -1;
        }
        rc = sqlite3_prepare_v3(self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &self->inserts[index], NULL);
        if (rc != SQLITE_OK) {
            set_sqlite_error(self->db, rc);
            writer_close_connection(self);
            return -1;
        }
    }
    return 0;
}

static int
require_open(Writer *self)
{
    if (self->db == NULL) {
        PyErr_SetString(state.programming_error, "the audit writer's connection is closed");
        return -1;
    }
    return 0;
}

static sqlite3_stmt *
insert_statement(Writer *self, Py_ssize_t index, Py_ssize_t width)
{
    if (require_open(self) < 0) {
        return NULL;
    }
    if (index < 0 || index >= self->insert_count) {
        PyErr_Format(PyExc_IndexError, "insert statement %zd does not exist, expected 0 to %zd",
                     index, self->insert_count - 1);
        return NULL;
    }
    sqlite3_stmt *statement = self->inserts[index];
    if (width < 1 || width > MAX_COLUMNS || sqlite3_bind_parameter_count(statement) != width) {
        PyErr_Format(PyExc_ValueError, "insert statement %zd takes %d values, got rows of %zd",
                     index, sqlite3_bind_parameter_count(statement), width);
        return NULL;
    }
    return statement;
}

/* Encode one row into the chain buffers, then insert it. */
static int
write_row(Writer *self, sqlite3_stmt *statement, PyObject *const *values, Py_ssize_t width)
{
    size_t start = self->encoded.len;
    if (buffer_reserve(&self->encoded, 5) < 0) {
        return -1;
    }
    put_byte(&self->encoded, M_TUPLE);
    put_le32(&self->encoded, (uint32_t)width);
    for (Py_ssize_t column = 0; column < width; column++) {
        if (marshal_value(&self->encoded, values[column]) < 0) {
            return -1;
        }
    }
    uint32_t crc = crc32_bytes((const unsigned char *)self->encoded.data + start,
                               self->encoded.len - start);
    if (buffer_reserve(&self->crcs, 4) < 0) {
        return -1;
    }
    put_le32(&self->crcs, crc);

    for (Py_ssize_t column = 0; column < width; column++) {
        if (bind_value(self->db, statement, (int)column + 1, values[column]) < 0) {
            return -1;
        }
    }
    int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE) {
        sqlite3_reset(statement);
        return set_sqlite_error(self->db, rc);
    }
    sqlite3_reset(statement);
    return 0;
}

/* Encode and insert a row that Python built: a tuple of ``width`` values. */
static int
write_tuple(Writer *self, sqlite3_stmt *statement, PyObject *row, Py_ssize_t width)
{
    if (row == NULL) {
        return -1;
    }
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != width) {
        PyErr_Format(PyExc_TypeError, "expected a row tuple of %zd values, got %R", width, row);
        return -1;
    }
    return write_row(self, statement, &PyTuple_GET_ITEM(row, 0), width);
}

/* A new tuple of ``count`` values from an array of borrowed references. */
static PyObject *
tuple_from_array(PyObject *const *items, Py_ssize_t count)
{
    PyObject *tuple = PyTuple_New(count);
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        PyTuple_SET_ITEM(tuple, index, Py_NewRef(items[index]));
    }
    return tuple;
}

/* The span result of the insert methods: (first id, last id), or None for no rows. */
static PyObject *
id_span(PyObject *first, PyObject *last)
{
    if (first == NULL) {
        Py_RETURN_NONE;
    }
    return PyTuple_Pack(2, first, last);
}

static PyObject *
require_list(PyObject *values)
{
    if (!PyList_Check(values)) {
        PyErr_Format(PyExc_TypeError, "expected a list of values, got %.100s",
                     Py_TYPE(values)->tp_name);
        return NULL;
    }
    return values;
}

PyDoc_STRVAR(insert_rows_doc,
"insert_rows(index, values, width)\n--\n\n"
"Insert rows of ``width`` values laid end to end in the list ``values`` with insert\n"
"statement ``index``; return (first id, last id) or None. Each row's first value is its id.");

static PyObject *
writer_insert_rows(Writer *self, PyObject *args)
{
    Py_ssize_t index, width;
    PyObject *values;
    if (!PyArg_ParseTuple(args, "nOn:insert_rows", &index, &values, &width)) {
        return NULL;
    }
    sqlite3_stmt *statement = insert_statement(self, index, width);
    if (statement == NULL || require_list(values) == NULL) {
        return NULL;
    }
    Py_ssize_t size = PyList_GET_SIZE(values);
    if (size % width != 0) {
        PyErr_Format(PyExc_ValueError, "%zd values do not make rows of %zd", size, width);
        return NULL;
    }
    PyObject **items = ((PyListObject *)values)->ob_item;
    for (Py_ssize_t start = 0; start < size; start += width) {
        if (write_row(self, statement, items + start, width) < 0) {
            return NULL;
        }
    }
    if (size == 0) {
        Py_RETURN_NONE;
    }
    return id_span(items[0], items[size - width]);
}

/* ------------------------------------------------------------------ events */

/* An event kind's layout, unpacked from the Python tuple
 * (record width, column sources, extra field positions, extra field defaults). */
typedef struct {
    PyObject *spec;  /* the layouts value this was read from, borrowed */
    Py_ssize_t width;
    Py_ssize_t columns;
    Py_ssize_t sources[MAX_COLUMNS];
    Py_ssize_t extra_count;
    Py_ssize_t extra_at[MAX_COLUMNS];
    PyObject *extra_defaults;  /* tuple, borrowed from spec */
} EventLayout;

/* Read a record position from a layout: an int below ``width``, or -1 where allowed. */
static int
read_position(PyObject *number, Py_ssize_t width, int allow_none, Py_ssize_t *out)
{
    Py_ssize_t position = PyLong_AsSsize_t(number);
    if (position == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (position >= width || position < (allow_none ? -1 : 0)) {
        PyErr_Format(PyExc_ValueError, "layout names record position %zd, outside 0 to %zd",
                     position, width - 1);
        return -1;
    }
    *out = position;
    return 0;
}

static int
read_event_layout(PyObject *spec, EventLayout *out)
{
    PyObject *sources, *extra_at;
    if (!PyArg_ParseTuple(spec, "nO!O!O!:event layout", &out->width, &PyTuple_Type, &sources,
                          &PyTuple_Type, &extra_at, &PyTuple_Type, &out->extra_defaults)) {
        return -1;
    }
    out->spec = spec;
    out->columns = PyTuple_GET_SIZE(sources);
    out->extra_count = PyTuple_GET_SIZE(extra_at);
    if (out->width < 4 || out->columns >= MAX_COLUMNS || out->extra_count > MAX_COLUMNS ||
        out->extra_count != PyTuple_GET_SIZE(out->extra_defaults)) {
        PyErr_SetString(PyExc_ValueError, "invalid event layout");
        return -1;
    }
    for (Py_ssize_t column = 0; column < out->columns; column++) {
        if (read_position(PyTuple_GET_ITEM(sources, column), out->width, 1,
                          &out->sources[column]) < 0) {
            return -1;
        }
    }
    for (Py_ssize_t index = 0; index < out->extra_count; index++) {
        if (read_position(PyTuple_GET_ITEM(extra_at, index), out->width, 0,
                          &out->extra_at[index]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* 1 when every extra field of the record equals its default, 0 when one differs. */
static int
extras_are_defaults(PyObject *const *record, const EventLayout *layout)
{
    for (Py_ssize_t index = 0; index < layout->extra_count; index++) {
        int equal = PyObject_RichCompareBool(record[layout->extra_at[index]],
                                             PyTuple_GET_ITEM(layout->extra_defaults, index), Py_EQ);
        if (equal <= 0) {
            return equal;
        }
    }
    return 1;
}

/* The layouts read so far in one insert_events call: a batch has at most three kinds. */
#define LAYOUT_CACHE 4

static const EventLayout *
event_layout(PyObject *layouts, PyObject *kind, EventLayout *cache, int *cached)
{
    PyObject *spec = PyDict_GetItemWithError(layouts, kind);
    if (spec == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "unknown event type %R; expected ExecutionEvent, "
                         "CancelReject or Trade", kind);
        }
        return NULL;
    }
    for (int index = 0; index < *cached; index++) {
        if (cache[index].spec == spec) {
            return &cache[index];
        }
    }
    EventLayout *slot = &cache[*cached < LAYOUT_CACHE ? (*cached)++ : LAYOUT_CACHE - 1];
    return read_event_layout(spec, slot) < 0 ? NULL : slot;
}

/* Insert one event record, or hand it to ``fallback`` when a field has no column. */
static int
write_event(Writer *self, sqlite3_stmt *statement, PyObject *const *record,
            const EventLayout *layout, PyObject *fallback)
{
    int plain = extras_are_defaults(record, layout);
    if (plain < 0) {
        return -1;
    }
    if (!plain) {
        PyObject *tuple = tuple_from_array(record, layout->width);
        if (tuple == NULL) {
            return -1;
        }
        PyObject *row = PyObject_CallOneArg(fallback, tuple);
        Py_DECREF(tuple);
        int result = write_tuple(self, statement, row, layout->columns + 1);
        Py_XDECREF(row);
        return result;
    }
    PyObject *row[MAX_COLUMNS];
    for (Py_ssize_t column = 0; column < layout->columns; column++) {
        Py_ssize_t source = layout->sources[column];
        row[column] = source < 0 ? Py_None : record[source];
    }
    row[layout->columns] = Py_None;  /* extra: no field differs from its default */
    return write_row(self, statement, row, layout->columns + 1);
}

PyDoc_STRVAR(insert_events_doc,
"insert_events(index, values, layouts, fallback)\n--\n\n"
"Insert event records (row id, ts_us, command_seq, kind, *fields) laid end to end in\n"
"``values``. ``layouts`` maps each kind to (record width, the record position of each\n"
"column but the last, or -1 for NULL, positions of the fields without a column, their\n"
"defaults). A record whose fields without a column differ from their defaults goes to\n"
"``fallback(record)``, which returns the row. Return (first id, last id) or None.");

static PyObject *
writer_insert_events(Writer *self, PyObject *args)
{
    Py_ssize_t index;
    PyObject *values, *layouts, *fallback;
    if (!PyArg_ParseTuple(args, "nOO!O:insert_events", &index, &values, &PyDict_Type, &layouts,
                          &fallback)) {
        return NULL;
    }
    if (require_list(values) == NULL || require_open(self) < 0) {
        return NULL;
    }
    EventLayout cache[LAYOUT_CACHE];
    int cached = 0;
    Py_ssize_t size = PyList_GET_SIZE(values);
    Py_ssize_t start = 0;
    Py_ssize_t last = 0;
    while (start < size) {
        if (start + 4 > size) {
            PyErr_SetString(PyExc_ValueError, "event record cut short");
            return NULL;
        }
        const EventLayout *layout =
            event_layout(layouts, PyList_GET_ITEM(values, start + 3), cache, &cached);
        if (layout == NULL) {
            return NULL;
        }
        sqlite3_stmt *statement = insert_statement(self, index, layout->columns + 1);
        if (statement == NULL) {
            return NULL;
        }
        if (start + layout->width > size) {
            PyErr_SetString(PyExc_ValueError, "event record cut short");
            return NULL;
        }
        /* Read the items again for each record: a fallback runs Python code. */
        PyObject **items = ((PyListObject *)values)->ob_item;
        if (write_event(self, statement, items + start, layout, fallback) < 0) {
            return NULL;
        }
        last = start;
        start += layout->width;
    }
    if (size == 0) {
        Py_RETURN_NONE;
    }
    return id_span(PyList_GET_ITEM(values, 0), PyList_GET_ITEM(values, last));
}

/* ------------------------------------------------------------------ commands */

/* A command class's layout, unpacked from the Python tuple (record width, JSON fragments,
 * type name, record positions of session_id, cl_ord_id and orig_cl_ord_id, -1 for none).
 * The JSON is fragment 0, field 0, fragment 1, ..., the last field, the last fragment. */
typedef struct {
    PyObject *cls;  /* borrowed from the record */
    Py_ssize_t width;
    PyObject *fragments;  /* tuple of str, one more than the fields; NULL: Python builds it */
    PyObject *type_name;
    Py_ssize_t session_at;
    Py_ssize_t cl_ord_id_at;
    Py_ssize_t orig_cl_ord_id_at;
} CommandLayout;

static int
read_command_layout(PyObject *spec, CommandLayout *out)
{
    PyObject *session_at, *cl_ord_id_at, *orig_cl_ord_id_at;
    if (!PyArg_ParseTuple(spec, "nO!O!OOO:command layout", &out->width, &PyTuple_Type,
                          &out->fragments, &PyUnicode_Type, &out->type_name, &session_at,
                          &cl_ord_id_at, &orig_cl_ord_id_at)) {
        return -1;
    }
    if (out->width < 4 || PyTuple_GET_SIZE(out->fragments) != out->width - 2) {
        PyErr_SetString(PyExc_ValueError, "invalid command layout");
        return -1;
    }
    if (read_position(session_at, out->width, 0, &out->session_at) < 0 ||
        read_position(cl_ord_id_at, out->width, 0, &out->cl_ord_id_at) < 0 ||
        read_position(orig_cl_ord_id_at, out->width, 1, &out->orig_cl_ord_id_at) < 0) {
        return -1;
    }
    return 0;
}

/* The layout of the command class ``cls``: from ``layouts`` when this module writes its
 * JSON, otherwise only its record width from ``widths``. */
static const CommandLayout *
command_layout(PyObject *layouts, PyObject *widths, PyObject *cls, CommandLayout *cache,
               int *cached)
{
    for (int index = 0; index < *cached; index++) {
        if (cache[index].cls == cls) {
            return &cache[index];
        }
    }
    CommandLayout *slot = &cache[*cached < LAYOUT_CACHE ? (*cached)++ : LAYOUT_CACHE - 1];
    memset(slot, 0, sizeof *slot);
    PyObject *spec = PyDict_GetItemWithError(layouts, cls);
    if (spec != NULL) {
        if (read_command_layout(spec, slot) < 0) {
            slot->cls = NULL;
            return NULL;
        }
        slot->cls = cls;
        return slot;
    }
    PyObject *width = PyErr_Occurred() ? NULL : PyDict_GetItemWithError(widths, cls);
    if (width == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "unknown command class %R", cls);
        }
        return NULL;
    }
    slot->width = PyLong_AsSsize_t(width);
    if (slot->width < 3) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "invalid command record width");
        }
        return NULL;
    }
    slot->cls = cls;
    return slot;
}

/* Write the command's JSON into self->json. Return 1 when a value is left to Python. */
static int
command_json(Writer *self, PyObject *const *record, const CommandLayout *layout)
{
    self->json.len = 0;
    Py_ssize_t fields = layout->width - 3;
    for (Py_ssize_t field = 0; field <= fields; field++) {
        Py_ssize_t size;
        const char *fragment =
            PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(layout->fragments, field), &size);
        if (fragment == NULL || buffer_append(&self->json, fragment, (size_t)size) < 0) {
            return -1;
        }
        if (field < fields) {
            int result = json_value(&self->json, record[3 + field]);
            if (result != 0) {
                return result;
            }
        }
    }
    return 0;
}

/* Insert one command record as (seq, ts_us, session_id, cl_ord_id, orig_cl_ord_id, type,
 * body), or hand it to ``fallback`` when its JSON needs Python. */
static int
write_command(Writer *self, sqlite3_stmt *statement, PyObject *const *record,
              const CommandLayout *layout, PyObject *fallback)
{
    int status = layout->fragments == NULL ? 1 : command_json(self, record, layout);
    if (status < 0) {
        return -1;
    }
    if (status > 0) {
        PyObject *tuple = tuple_from_array(record, layout->width);
        if (tuple == NULL) {
            return -1;
        }
        PyObject *row = PyObject_CallOneArg(fallback, tuple);
        Py_DECREF(tuple);
        int result = write_tuple(self, statement, row, 7);
        Py_XDECREF(row);
        return result;
    }
    PyObject *body = PyUnicode_DecodeASCII(self->json.data, (Py_ssize_t)self->json.len, NULL);
    if (body == NULL) {
        return -1;
    }
    PyObject *row[7] = {
        record[0], record[1], record[layout->session_at], record[layout->cl_ord_id_at],
        layout->orig_cl_ord_id_at < 0 ? Py_None : record[layout->orig_cl_ord_id_at],
        layout->type_name, body,
    };
    int result = write_row(self, statement, row, 7);
    Py_DECREF(body);
    return result;
}

PyDoc_STRVAR(insert_commands_doc,
"insert_commands(index, values, layouts, widths, fallback)\n--\n\n"
"Insert command records (seq, ts_us, class, *fields) laid end to end in ``values``.\n"
"``layouts`` maps each class written here to (record width, JSON fragments, type name,\n"
"record positions of session_id, cl_ord_id and orig_cl_ord_id or -1). A record of\n"
"another class, or with a value other than None, bool, int or str, goes to\n"
"``fallback(record)``, which returns the row; ``widths`` gives the record width of every\n"
"class. Return (first seq, last seq) or None.");

static PyObject *
writer_insert_commands(Writer *self, PyObject *args)
{
    Py_ssize_t index;
    PyObject *values, *layouts, *widths, *fallback;
    if (!PyArg_ParseTuple(args, "nOO!O!O:insert_commands", &index, &values, &PyDict_Type,
                          &layouts, &PyDict_Type, &widths, &fallback)) {
        return NULL;
    }
    sqlite3_stmt *statement = insert_statement(self, index, 7);
    if (statement == NULL || require_list(values) == NULL) {
        return NULL;
    }
    CommandLayout cache[LAYOUT_CACHE];
    int cached = 0;
    Py_ssize_t size = PyList_GET_SIZE(values);
    Py_ssize_t start = 0;
    Py_ssize_t last = 0;
    while (start < size) {
        if (start + 3 > size) {
            PyErr_SetString(PyExc_ValueError, "command record cut short");
            return NULL;
        }
        const CommandLayout *layout =
            command_layout(layouts, widths, PyList_GET_ITEM(values, start + 2), cache, &cached);
        if (layout == NULL) {
            return NULL;
        }
        if (start + layout->width > size) {
            PyErr_SetString(PyExc_ValueError, "command record cut short");
            return NULL;
        }
        /* Read the items again for each record: a fallback runs Python code. */
        PyObject **items = ((PyListObject *)values)->ob_item;
        int result = write_command(self, statement, items + start, layout, fallback);
        if (result < 0) {
            return NULL;
        }
        last = start;
        start += layout->width;
    }
    if (size == 0) {
        Py_RETURN_NONE;
    }
    return id_span(PyList_GET_ITEM(values, 0), PyList_GET_ITEM(values, last));
}

/* ------------------------------------------------------------------ statements */

PyDoc_STRVAR(execute_doc,
"execute(sql, parameters=())\n--\n\n"
"Run one SQL statement with its parameters to completion; rows it returns are dropped.");

static PyObject *
writer_execute(Writer *self, PyObject *args)
{
    const char *sql;
    PyObject *parameters = NULL;
    if (!PyArg_ParseTuple(args, "s|O:execute", &sql, &parameters) || require_open(self) < 0) {
        return NULL;
    }
    PyObject *fast = NULL;
    if (parameters != NULL) {
        fast = PySequence_Fast(parameters, "parameters must be a sequence");
        if (fast == NULL) {
            return NULL;
        }
    }
    sqlite3_stmt *statement;
    int rc = sqlite3_prepare_v2(self->db, sql, -1, &statement, NULL);
    if (rc != SQLITE_OK) {
        Py_XDECREF(fast);
        set_sqlite_error(self->db, rc);
        return NULL;
    }
    Py_ssize_t count = fast != NULL ? PySequence_Fast_GET_SIZE(fast) : 0;
    if (statement == NULL || count != sqlite3_bind_parameter_count(statement)) {
        PyErr_Format(state.programming_error, "%s takes %d parameters, %zd supplied", sql,
                     statement != NULL ? sqlite3_bind_parameter_count(statement) : 0, count);
        sqlite3_finalize(statement);
        Py_XDECREF(fast);
        return NULL;
    }
    for (Py_ssize_t position = 0; position < count; position++) {
        if (bind_value(self->db, statement, (int)position + 1,
                       PySequence_Fast_GET_ITEM(fast, position)) < 0) {
            sqlite3_finalize(statement);
            Py_XDECREF(fast);
            return NULL;
        }
    }
    do {
        rc = sqlite3_step(statement);
    } while (rc == SQLITE_ROW);
    if (rc != SQLITE_DONE) {
        set_sqlite_error(self->db, rc);
    }
    sqlite3_finalize(statement);
    Py_XDECREF(fast);
    if (rc != SQLITE_DONE) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(take_encoded_doc,
"take_encoded()\n--\n\n"
"Return (encoded rows, CRC-32s) of the rows inserted since the last call, and forget them:\n"
"each row's marshal format 2 encoding end to end, and each row's CRC-32 as 4 bytes\n"
"little-endian.");

static PyObject *
writer_take_encoded(Writer *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result = Py_BuildValue("(y#y#)", self->encoded.data, (Py_ssize_t)self->encoded.len,
                                     self->crcs.data, (Py_ssize_t)self->crcs.len);
    self->encoded.len = 0;
    self->crcs.len = 0;
    return result;
}

static PyObject *
writer_close(Writer *self, PyObject *Py_UNUSED(ignored))
{
    writer_close_connection(self);
    Py_RETURN_NONE;
}

static PyObject *
writer_in_transaction(Writer *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->db != NULL && !sqlite3_get_autocommit(self->db));
}

static PyMethodDef writer_methods[] = {
    {"execute", (PyCFunction)writer_execute, METH_VARARGS, execute_doc},
    {"insert_rows", (PyCFunction)writer_insert_rows, METH_VARARGS, insert_rows_doc},
    {"insert_events", (PyCFunction)writer_insert_events, METH_VARARGS, insert_events_doc},
    {"insert_commands", (PyCFunction)writer_insert_commands, METH_VARARGS, insert_commands_doc},
    {"take_encoded", (PyCFunction)writer_take_encoded, METH_NOARGS, take_encoded_doc},
    {"close", (PyCFunction)writer_close, METH_NOARGS, "close()\n--\n\nClose the connection."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"in_transaction", (getter)writer_in_transaction, NULL,
     "True while a transaction is open.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(writer_doc,
"Writer(path, inserts)\n--\n\n"
"One SQLite connection to the existing file ``path`` with the INSERT statements\n"
"``inserts`` prepared, inserting rows and encoding them for the hash chain.\n"
"Use it from one thread at a time.");

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "surveillance._cwriter.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = writer_doc,
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
    .tp_init = (initproc)writer_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ module helpers */

PyDoc_STRVAR(encode_row_doc,
"encode_row(row)\n--\n\n"
"Return marshal.dumps(row, 2) for a tuple, through this module's encoder.");

static PyObject *
module_encode_row(PyObject *Py_UNUSED(module), PyObject *row)
{
    if (!PyTuple_Check(row)) {
        PyErr_Format(PyExc_TypeError, "expected a tuple, got %.100s", Py_TYPE(row)->tp_name);
        return NULL;
    }
    Buffer buffer = {0};
    Py_ssize_t width = PyTuple_GET_SIZE(row);
    if (buffer_reserve(&buffer, 5) < 0) {
        return NULL;
    }
    put_byte(&buffer, M_TUPLE);
    put_le32(&buffer, (uint32_t)width);
    for (Py_ssize_t column = 0; column < width; column++) {
        if (marshal_value(&buffer, PyTuple_GET_ITEM(row, column)) < 0) {
            buffer_free(&buffer);
            return NULL;
        }
    }
    PyObject *result = PyBytes_FromStringAndSize(buffer.data, (Py_ssize_t)buffer.len);
    buffer_free(&buffer);
    return result;
}

PyDoc_STRVAR(crc32_doc, "crc32(data)\n--\n\nReturn zlib.crc32(data), through this module's CRC.");

static PyObject *
module_crc32(PyObject *Py_UNUSED(module), PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    uint32_t crc = crc32_bytes(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

PyDoc_STRVAR(json_value_doc,
"json_value(value)\n--\n\n"
"Return json.dumps(value) as this module writes it, or None for a value it leaves to\n"
"Python (a float, an int beyond 64 bits, anything not a JSON scalar).");

static PyObject *
module_json_value(PyObject *Py_UNUSED(module), PyObject *value)
{
    Buffer buffer = {0};
    int status = json_value(&buffer, value);
    PyObject *result = NULL;
    if (status == 0) {
        result = PyUnicode_DecodeASCII(buffer.data != NULL ? buffer.data : "",
                                       (Py_ssize_t)buffer.len, NULL);
    }
    else if (status > 0) {
        result = Py_NewRef(Py_None);
    }
    buffer_free(&buffer);
    return result;
}

static PyMethodDef module_methods[] = {
    {"encode_row", module_encode_row, METH_O, encode_row_doc},
    {"crc32", module_crc32, METH_O, crc32_doc},
    {"json_value", module_json_value, METH_O, json_value_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cwriter_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "surveillance._cwriter",
    .m_doc = "Fast row sink for the audit trail's writer process; see surveillance.audit_native.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
load_sqlite3_errors(void)
{
    PyObject *sqlite3_module = PyImport_ImportModule("sqlite3");
    if (sqlite3_module == NULL) {
        return -1;
    }
    struct { PyObject **slot; const char *name; } classes[] = {
        {&state.database_error, "DatabaseError"},
        {&state.operational_error, "OperationalError"},
        {&state.integrity_error, "IntegrityError"},
        {&state.internal_error, "InternalError"},
        {&state.programming_error, "ProgrammingError"},
        {&state.interface_error, "InterfaceError"},
        {&state.data_error, "DataError"},
    };
    for (size_t index = 0; index < sizeof classes / sizeof classes[0]; index++) {
        *classes[index].slot = PyObject_GetAttrString(sqlite3_module, classes[index].name);
        if (*classes[index].slot == NULL) {
            Py_DECREF(sqlite3_module);
            return -1;
        }
    }
    Py_DECREF(sqlite3_module);
    return 0;
}

PyMODINIT_FUNC
PyInit__cwriter(void)
{
    crc_init();
    if (load_sqlite3_errors() < 0 || PyType_Ready(&WriterType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&cwriter_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
