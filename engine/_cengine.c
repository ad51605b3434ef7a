/*
 * Compiled fast paths of engine.engine.MatchingEngine.
 *
 * The engine's state stays in its Python objects (Order, PriceLevel, BookSide, OrderBook
 * and the engine's dicts), so every other part of the engine, the market data, the
 * auction and check() read the same books whichever path changed them. This module
 * carries out the common commands on those objects:
 *
 *   - a NewOrder for a plain DAY or GTC limit order in continuous trading,
 *   - a CancelOrder of a live order without terms (Order.terms is None: no stop, iceberg,
 *     MinQty, post-only or expiry) that rests in the book,
 *   - a ReplaceOrder of such an order that stays a plain DAY or GTC limit order, or
 *     that it rejects because the new OrderQty (38) is not above the CumQty (14),
 *
 * and the matching loop, filling resting orders without terms.
 *
 * Every other case goes to the Python code before anything changed. A command the fast
 * path does not take is handed to MatchingEngine.process. The matching loop hands the
 * rest of a match to MatchingEngine._match at the first resting order that has terms or
 * belongs to the aggressor's firm under self-match prevention. It does so too when the
 * aggressor's firm is not a Firm, or where a fill would reach 2**31 in price or
 * quantity. The Python code continues from the same state, so both paths give the same
 * events, byte for byte, and tests run the engine both ways.
 *
 * Slots of Order, PriceLevel, BookSide, Instrument, Firm and the command classes are
 * read and written at the offsets of their member descriptors, found once by name, so
 * a renamed slot fails at start-up rather than misbehaving.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* Quantities and prices are handled as C integers below this bound, so that a product
 * of two of them (a notional) cannot overflow an int64. */
#define SMALL_BOUND (((long long)1) << 31)
#define BIG_BOUND (((long long)1) << 62)

/* ------------------------------------------------------------------ configuration */

enum {
    O_ORDER_ID, O_SESSION_ID, O_CL_ORD_ID, O_SYMBOL, O_SIDE, O_ORD_TYPE, O_TIME_IN_FORCE,
    O_PRICE, O_ORDER_QTY, O_CUM_QTY, O_LEAVES_QTY, O_VISIBLE_QTY, O_CUM_NOTIONAL,
    O_ORD_STATUS, O_ACCOUNT, O_SEQ, O_TERMS, O_FIRM, O_COUNT
};
static const char *ORDER_SLOTS[O_COUNT] = {
    "order_id", "session_id", "cl_ord_id", "symbol", "side", "ord_type", "time_in_force",
    "price", "order_qty", "cum_qty", "leaves_qty", "visible_qty", "cum_notional",
    "ord_status", "account", "seq", "terms", "firm",
};

enum { L_PRICE, L_TOTAL_QTY, L_LEAVES_QTY, L_ORDERS, L_COUNT };
static const char *LEVEL_SLOTS[L_COUNT] = {"price", "total_qty", "leaves_qty", "orders"};

enum { S_SIGN, S_KEYS, S_LEVELS, S_COUNT };
static const char *SIDE_SLOTS[S_COUNT] = {"sign", "keys", "levels"};

enum { B_INSTRUMENT, B_BIDS, B_ASKS, B_PHASE, B_LAST_PX, B_LAST_QTY, B_STOPS, B_COUNT };
static const char *BOOK_SLOTS[B_COUNT] = {
    "instrument", "bids", "asks", "phase", "last_px", "last_qty", "stops",
};

enum { I_TICK_SIZE, I_LOT_SIZE, I_LOW_LIMIT_PRICE, I_HIGH_LIMIT_PRICE, I_COUNT };
static const char *INSTRUMENT_SLOTS[I_COUNT] = {
    "tick_size", "lot_size", "low_limit_price", "high_limit_price",
};

enum { F_SELF_MATCH_PREVENTION, F_COUNT };
static const char *FIRM_SLOTS[F_COUNT] = {"self_match_prevention"};

enum {
    N_SESSION_ID, N_CL_ORD_ID, N_SYMBOL, N_SIDE, N_ORD_TYPE, N_ORDER_QTY, N_PRICE,
    N_TIME_IN_FORCE, N_ACCOUNT, N_STOP_PX, N_DISPLAY_QTY, N_MIN_QTY, N_POST_ONLY,
    N_EXPIRE_TIME_US, N_EXPIRE_DATE, N_COUNT
};
static const char *NEW_ORDER_SLOTS[N_COUNT] = {
    "session_id", "cl_ord_id", "symbol", "side", "ord_type", "order_qty", "price",
    "time_in_force", "account", "stop_px", "display_qty", "min_qty", "post_only",
    "expire_time_us", "expire_date",
};

enum { C_SESSION_ID, C_CL_ORD_ID, C_ORIG_CL_ORD_ID, C_SYMBOL, C_SIDE, C_ORDER_ID, C_COUNT };
static const char *CANCEL_SLOTS[C_COUNT] = {
    "session_id", "cl_ord_id", "orig_cl_ord_id", "symbol", "side", "order_id",
};

enum {
    R_SESSION_ID, R_CL_ORD_ID, R_ORIG_CL_ORD_ID, R_SYMBOL, R_SIDE, R_ORD_TYPE, R_ORDER_QTY,
    R_PRICE, R_TIME_IN_FORCE, R_ORDER_ID, R_STOP_PX, R_DISPLAY_QTY, R_EXPIRE_TIME_US,
    R_EXPIRE_DATE, R_COUNT
};
static const char *REPLACE_SLOTS[R_COUNT] = {
    "session_id", "cl_ord_id", "orig_cl_ord_id", "symbol", "side", "ord_type", "order_qty",
    "price", "time_in_force", "order_id", "stop_px", "display_qty", "expire_time_us",
    "expire_date",
};

static Py_ssize_t order_off[O_COUNT], level_off[L_COUNT], side_off[S_COUNT], book_off[B_COUNT];
static Py_ssize_t instrument_off[I_COUNT], firm_off[F_COUNT];
static Py_ssize_t new_off[N_COUNT], cancel_off[C_COUNT], replace_off[R_COUNT];

/* Classes and enum members, set by configure(). */
static PyTypeObject *Order_type, *PriceLevel_type, *OrderBook_type, *ExecutionEvent_type, *Trade_type;
static PyTypeObject *Firm_type;
static PyObject *NewOrder_type, *CancelOrder_type, *ReplaceOrder_type, *CancelReject_type;
static PyObject *BUY, *LIMIT, *CONTINUOUS, *DAY, *GTC, *SMP_NONE;
static PyObject *ST_NEW, *ST_PARTIALLY_FILLED, *ST_FILLED, *ST_CANCELED;
static PyObject *EX_NEW, *EX_TRADE, *EX_CANCELED, *EX_REPLACED;
static PyObject *CXL_REPLACE, *CXL_OTHER;
static PyObject *SELF_MATCH_INCOMING_TEXT;
static int configured = 0;

/* Interned names. */
static PyObject *s_match, *s_run_stops, *s_cancel_remainder;
static PyObject *s_empty, *s_zero;

static int
slot_offsets(PyObject *cls, const char **names, Py_ssize_t *offsets, int count)
{
    for (int i = 0; i < count; i++) {
        PyObject *descr = PyObject_GetAttrString(cls, names[i]);
        if (descr == NULL) {
            return -1;
        }
        if (Py_TYPE(descr) != &PyMemberDescr_Type) {
            PyErr_Format(PyExc_TypeError, "%R.%s is not a slot", cls, names[i]);
            Py_DECREF(descr);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "%R.%s is not an object slot", cls, names[i]);
            Py_DECREF(descr);
            return -1;
        }
        offsets[i] = member->offset;
        Py_DECREF(descr);
    }
    return 0;
}

static PyObject *
take_item(PyObject *ns, const char *name)
{
    PyObject *value = PyDict_GetItemString(ns, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "configure() needs %s", name);
        return NULL;
    }
    Py_INCREF(value);
    return value;
}

#define TAKE(var, name) do { if ((var = (void *)take_item(ns, name)) == NULL) return NULL; } while (0)

/* Events are dropped by the thousand each second. A named tuple has no __dict__, weak
 * references or finaliser (configure() checks), so freeing one needs only what
 * tupledealloc does and the release of its class, not subtype_dealloc's general path. */
static void
event_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, event_dealloc)
    Py_ssize_t i = Py_SIZE(op);
    while (--i >= 0) {
        Py_XDECREF(PyTuple_GET_ITEM(op, i));
    }
    type->tp_free(op);
    Py_DECREF(type);
    Py_TRASHCAN_END
}

static PyObject *
configure(PyObject *module, PyObject *ns)
{
    if (!PyDict_Check(ns)) {
        PyErr_SetString(PyExc_TypeError, "configure() takes a dict");
        return NULL;
    }
    PyObject *cls;
    TAKE(Order_type, "Order");
    TAKE(PriceLevel_type, "PriceLevel");
    TAKE(OrderBook_type, "OrderBook");
    TAKE(ExecutionEvent_type, "ExecutionEvent");
    TAKE(Trade_type, "Trade");
    TAKE(NewOrder_type, "NewOrder");
    TAKE(CancelOrder_type, "CancelOrder");
    TAKE(ReplaceOrder_type, "ReplaceOrder");
    TAKE(CancelReject_type, "CancelReject");
    TAKE(BUY, "BUY");
    TAKE(LIMIT, "LIMIT");
    TAKE(CONTINUOUS, "CONTINUOUS");
    TAKE(DAY, "DAY");
    TAKE(GTC, "GTC");
    TAKE(SMP_NONE, "SMP_NONE");
    TAKE(ST_NEW, "NEW");
    TAKE(ST_PARTIALLY_FILLED, "PARTIALLY_FILLED");
    TAKE(ST_FILLED, "FILLED");
    TAKE(ST_CANCELED, "CANCELED");
    TAKE(EX_NEW, "EXEC_NEW");
    TAKE(EX_TRADE, "EXEC_TRADE");
    TAKE(EX_CANCELED, "EXEC_CANCELED");
    TAKE(EX_REPLACED, "EXEC_REPLACED");
    TAKE(CXL_REPLACE, "CXL_REPLACE");
    TAKE(CXL_OTHER, "CXL_OTHER");
    TAKE(SELF_MATCH_INCOMING_TEXT, "SELF_MATCH_INCOMING_TEXT");
    if (slot_offsets((PyObject *)Order_type, ORDER_SLOTS, order_off, O_COUNT) < 0
        || slot_offsets((PyObject *)PriceLevel_type, LEVEL_SLOTS, level_off, L_COUNT) < 0
        || slot_offsets((PyObject *)OrderBook_type, BOOK_SLOTS, book_off, B_COUNT) < 0
        || slot_offsets(NewOrder_type, NEW_ORDER_SLOTS, new_off, N_COUNT) < 0
        || slot_offsets(CancelOrder_type, CANCEL_SLOTS, cancel_off, C_COUNT) < 0
        || slot_offsets(ReplaceOrder_type, REPLACE_SLOTS, replace_off, R_COUNT) < 0) {
        return NULL;
    }
    TAKE(cls, "BookSide");
    int failed = slot_offsets(cls, SIDE_SLOTS, side_off, S_COUNT);
    Py_DECREF(cls);
    TAKE(cls, "Instrument");
    failed = failed || slot_offsets(cls, INSTRUMENT_SLOTS, instrument_off, I_COUNT);
    Py_DECREF(cls);
    Py_CLEAR(Firm_type);
    TAKE(Firm_type, "Firm");
    failed = failed || slot_offsets((PyObject *)Firm_type, FIRM_SLOTS, firm_off, F_COUNT);
    if (failed) {
        return NULL;
    }
    /* Order and PriceLevel are built here with PyObject_GC_New and their slots filled
     * in, so they must be plain slotted classes: no __dict__, no items. The events are
     * tuple subclasses without fields of their own, built with PyObject_GC_NewVar. */
    PyTypeObject *slotted[2] = {Order_type, PriceLevel_type};
    for (int i = 0; i < 2; i++) {
        if (!PyType_HasFeature(slotted[i], Py_TPFLAGS_HAVE_GC) || slotted[i]->tp_dictoffset
            || slotted[i]->tp_itemsize || PyType_HasFeature(slotted[i], Py_TPFLAGS_MANAGED_DICT)) {
            PyErr_Format(PyExc_TypeError, "%s must be a class with __slots__ only",
                         slotted[i]->tp_name);
            return NULL;
        }
    }
    if (!PyType_IsSubtype(ExecutionEvent_type, &PyTuple_Type)
        || !PyType_IsSubtype(Trade_type, &PyTuple_Type)
        || ExecutionEvent_type->tp_basicsize != PyTuple_Type.tp_basicsize
        || Trade_type->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_SetString(PyExc_TypeError, "events must be named tuples");
        return NULL;
    }
    PyTypeObject *events[2] = {ExecutionEvent_type, Trade_type};
    for (int i = 0; i < 2; i++) {
        PyTypeObject *t = events[i];
        if (t->tp_base != &PyTuple_Type || !PyType_HasFeature(t, Py_TPFLAGS_HEAPTYPE)
            || t->tp_dictoffset || t->tp_weaklistoffset || t->tp_finalize || t->tp_del) {
            PyErr_Format(PyExc_TypeError, "%s must be a named tuple with no fields of its own",
                         t->tp_name);
            return NULL;
        }
        t->tp_dealloc = event_dealloc;
    }
    configured = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ small helpers */

static inline void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *value)  /* steals value */
{
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

static inline void
set_slot_ref(PyObject *obj, Py_ssize_t off, PyObject *value)  /* borrows value */
{
    Py_INCREF(value);
    set_slot(obj, off, value);
}

static inline int
set_slot_ll(PyObject *obj, Py_ssize_t off, long long value)
{
    PyObject *number = PyLong_FromLongLong(value);
    if (number == NULL) {
        return -1;
    }
    set_slot(obj, off, number);
    return 0;
}

/* A level's total_qty and leaves_qty. They are equal unless an iceberg rests there, and
 * then one int object serves both, which saves an allocation. */
static int
set_level_qty(PyObject *level, long long total, long long leaves)
{
    if (set_slot_ll(level, level_off[L_TOTAL_QTY], total) < 0) {
        return -1;
    }
    if (leaves == total) {
        set_slot_ref(level, level_off[L_LEAVES_QTY], SLOT(level, level_off[L_TOTAL_QTY]));
        return 0;
    }
    return set_slot_ll(level, level_off[L_LEAVES_QTY], leaves);
}

/* The value of an exact int in [-BIG_BOUND, BIG_BOUND], else 0 with *ok = 0. */
static inline long long
as_ll(PyObject *obj, int *ok)
{
    if (obj == NULL || !PyLong_CheckExact(obj)) {
        *ok = 0;
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    /* Up to CPython 3.11 an int keeps its sign in ob_size and its magnitude in 30-bit
     * digits; prices and quantities take one or two. Read those directly. */
    Py_ssize_t size = Py_SIZE(obj);
    const digit *digits = ((PyLongObject *)obj)->ob_digit;
    if (size >= -2 && size <= 2) {
        long long magnitude = size == 0 ? 0
            : (size == 1 || size == -1) ? (long long)digits[0]
            : (long long)digits[0] | ((long long)digits[1] << PyLong_SHIFT);
        return size < 0 ? -magnitude : magnitude;
    }
#endif
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow || value > BIG_BOUND || value < -BIG_BOUND) {
        *ok = 0;
        return 0;
    }
    return value;
}

/* An int equal to 0: the value Order.display_qty takes without creating the order's
 * terms, where None or False would create them. */
static inline int
is_zero_int(PyObject *obj)
{
    if (!PyLong_CheckExact(obj)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    return Py_SIZE(obj) == 0;
#else
    /* From CPython 3.12 an int keeps its sign and size in a tag, not in ob_size. */
    int ok = 1;
    return as_ll(obj, &ok) == 0 && ok;
#endif
}

static inline int
is_false_value(PyObject *obj)  /* 0, False or None: Python's "not obj" for these slots */
{
    if (obj == Py_None || obj == Py_False) {
        return 1;
    }
    return is_zero_int(obj);
}

/* prefix + decimal number, as f"{prefix}{num}" gives. */
static PyObject *
make_id(PyObject *prefix, long long num)
{
    char buffer[24];
    char *end = buffer + sizeof buffer - 1;
    char *digits = end;
    unsigned long long n = num < 0 ? -(unsigned long long)num : (unsigned long long)num;
    *end = '\0';
    do {
        *--digits = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    if (num < 0) {
        *--digits = '-';
    }
    Py_ssize_t len = end - digits;
    if (PyUnicode_IS_ASCII(prefix)) {
        Py_ssize_t plen = PyUnicode_GET_LENGTH(prefix);
        PyObject *result = PyUnicode_New(plen + len, 127);
        if (result == NULL) {
            return NULL;
        }
        char *data = (char *)PyUnicode_DATA(result);
        memcpy(data, PyUnicode_DATA(prefix), plen);
        memcpy(data + plen, digits, len);
        return result;
    }
    return PyUnicode_FromFormat("%U%s", prefix, digits);
}

/* Events, orders and levels built here stay off the garbage collector's lists, because
 * none of them can be part of a reference cycle. An event contains strings, integers,
 * None and enum members, and an order contains those and its firm. A level contains its
 * orders, and none of these refer back to what contains them. Reference counting frees
 * them, and the collector does not scan every live order on each full collection, which
 * cost about a third of the engine's time in the benchmark. CPython untracks tuples and
 * dicts of atomic values for the same reason.
 *
 * PyObject_GC_New returns an object that is not tracked yet, so these are never put on
 * the lists at all. new_event's caller sets every item; new_untracked clears the slots of
 * a slotted class, which its caller then sets. */
static PyObject *
new_event(PyTypeObject *type, Py_ssize_t size)
{
    PyVarObject *event = PyObject_GC_NewVar(PyVarObject, type, size);
    return (PyObject *)event;
}

static PyObject *
new_untracked(PyTypeObject *type)
{
    PyObject *obj = PyObject_GC_New(PyObject, type);
    if (obj != NULL) {
        memset((char *)obj + sizeof(PyObject), 0, type->tp_basicsize - sizeof(PyObject));
    }
    return obj;
}

#define PUT(tuple, i, value) do { PyObject *v_ = (value); Py_INCREF(v_); PyTuple_SET_ITEM(tuple, i, v_); } while (0)
#define PUT_NEW(tuple, i, value) PyTuple_SET_ITEM(tuple, i, value)

/* An ExecutionEvent in the field order of engine.events: the fields a report or a fill
 * sets are given, the others are the order's. The order has no terms (Order.terms is
 * None), so those fields take their defaults: the fast paths take no other order.
 * Steals exec_id and borrows the rest. */
static PyObject *
execution_event(PyObject *order, PyObject *exec_id, PyObject *exec_type, PyObject *status,
                PyObject *orig_cl_ord_id, PyObject *symbol, PyObject *price,
                PyObject *cum_qty, PyObject *leaves_qty, PyObject *cum_notional,
                PyObject *last_qty, PyObject *last_px, PyObject *trade_id)
{
    PyObject *e = new_event(ExecutionEvent_type, 27);
    if (e == NULL) {
        Py_DECREF(exec_id);
        return NULL;
    }
    PUT_NEW(e, 0, exec_id);
    PUT(e, 1, exec_type);
    PUT(e, 2, status);
    PUT(e, 3, SLOT(order, order_off[O_ORDER_ID]));
    PUT(e, 4, SLOT(order, order_off[O_SESSION_ID]));
    PUT(e, 5, SLOT(order, order_off[O_CL_ORD_ID]));
    PUT(e, 6, orig_cl_ord_id);
    PUT(e, 7, symbol);
    PUT(e, 8, SLOT(order, order_off[O_SIDE]));
    PUT(e, 9, SLOT(order, order_off[O_ORD_TYPE]));
    PUT(e, 10, SLOT(order, order_off[O_TIME_IN_FORCE]));
    PUT(e, 11, price);
    PUT(e, 12, SLOT(order, order_off[O_ORDER_QTY]));
    PUT(e, 13, cum_qty);
    PUT(e, 14, leaves_qty);
    PUT(e, 15, cum_notional);
    PUT(e, 16, last_qty);
    PUT(e, 17, last_px);
    PUT(e, 18, trade_id);
    PUT(e, 19, Py_None);
    PUT(e, 20, s_empty);
    PUT(e, 21, Py_None);    /* stop_px */
    PUT(e, 22, s_zero);     /* display_qty */
    PUT(e, 23, s_zero);     /* min_qty */
    PUT(e, 24, Py_False);   /* post_only */
    PUT(e, 25, Py_None);    /* expire_time_us */
    PUT(e, 26, Py_None);    /* expire_date */
    return e;
}

/* An ExecutionEvent from the order's state, as MatchingEngine._execution builds it. */
static PyObject *
order_event(PyObject *order, PyObject *exec_id, PyObject *exec_type, PyObject *orig_cl_ord_id)
{
    return execution_event(
        order, exec_id, exec_type, SLOT(order, order_off[O_ORD_STATUS]), orig_cl_ord_id,
        SLOT(order, order_off[O_SYMBOL]), SLOT(order, order_off[O_PRICE]),
        SLOT(order, order_off[O_CUM_QTY]), SLOT(order, order_off[O_LEAVES_QTY]),
        SLOT(order, order_off[O_CUM_NOTIONAL]), s_zero, s_zero, Py_None);
}

/* A new event list holding ``event``, which it steals; NULL on error. */
static PyObject *
one_event_list(PyObject *event)
{
    PyObject *events = PyList_New(1);
    if (events == NULL) {
        Py_DECREF(event);
        return NULL;
    }
    PyList_SET_ITEM(events, 0, event);
    return events;
}

/* A new event list holding one ExecutionEvent from the order's state, numbered with the
 * next ExecID (17). */
static PyObject *
report_list(PyObject *exec_prefix, long long *exec_count, PyObject *order, PyObject *exec_type,
            PyObject *orig_cl_ord_id)
{
    *exec_count += 1;
    PyObject *exec_id = make_id(exec_prefix, *exec_count);
    PyObject *e = exec_id ? order_event(order, exec_id, exec_type, orig_cl_ord_id) : NULL;
    return e == NULL ? NULL : one_event_list(e);
}

/* The aggressor's TRADE event, the resting order's TRADE event and the Trade of one
 * fill, appended to ``events`` in that order, as MatchingEngine._match builds them.
 * Steals the IDs and borrows the rest; the aggressor's quantities are its state after
 * the fill. */
static int
append_fill(PyObject *events, PyObject *order, PyObject *resting, PyObject *exec_a,
            PyObject *exec_r, PyObject *trade_id, PyObject *take_obj, int filled,
            PyObject *cum_obj, PyObject *leaves_obj, PyObject *notional_obj, PyObject *price)
{
    PyObject *symbol = SLOT(order, order_off[O_SYMBOL]);
    PyObject *ea = NULL, *er = NULL, *tr = NULL;
    int result = -1;
    ea = execution_event(
        order, exec_a, EX_TRADE, filled ? ST_FILLED : ST_PARTIALLY_FILLED, Py_None, symbol,
        SLOT(order, order_off[O_PRICE]), cum_obj, leaves_obj, notional_obj, take_obj, price,
        trade_id);
    if (ea == NULL) {
        Py_DECREF(exec_r);
        goto done;
    }
    er = execution_event(
        resting, exec_r, EX_TRADE, SLOT(resting, order_off[O_ORD_STATUS]), Py_None, symbol,
        price, SLOT(resting, order_off[O_CUM_QTY]), SLOT(resting, order_off[O_LEAVES_QTY]),
        SLOT(resting, order_off[O_CUM_NOTIONAL]), take_obj, price, trade_id);
    tr = er == NULL ? NULL : new_event(Trade_type, 10);
    if (tr == NULL) {
        goto done;
    }
    PUT(tr, 0, trade_id);
    PUT(tr, 1, symbol);
    PUT(tr, 2, price);
    PUT(tr, 3, take_obj);
    PUT(tr, 4, SLOT(order, order_off[O_SIDE]));
    PUT(tr, 5, SLOT(order, order_off[O_ORDER_ID]));
    PUT(tr, 6, SLOT(order, order_off[O_SESSION_ID]));
    PUT(tr, 7, SLOT(resting, order_off[O_ORDER_ID]));
    PUT(tr, 8, SLOT(resting, order_off[O_SESSION_ID]));
    PUT(tr, 9, Py_False);
    if (PyList_Append(events, ea) == 0 && PyList_Append(events, er) == 0
        && PyList_Append(events, tr) == 0) {
        result = 0;
    }
done:
    Py_XDECREF(ea);
    Py_XDECREF(er);
    Py_XDECREF(tr);
    return result;
}

/* ------------------------------------------------------------------ the ClOrdID index */

/* A session's ClOrdID (11) index: ClOrdID -> the latest order that used it, as a dict
 * would hold it. Beside the table of entries, which keep each key's hash, a byte per
 * slot records whether the slot is empty, removed or live, and for a live slot 7 bits
 * of the key's hash. A probe reads these bytes and reads an entry only where the bits
 * match. The bytes of an index of 100,000 ClOrdIDs take 256 KiB and stay in the CPU's
 * cache while the entries do not, so a ClOrdID the session has not used, as a new order
 * and the new ClOrdID of a cancel or replace carry, is looked up without a cache miss.
 * CPython 3.11's dict keyed by strings reads an index array, the entry and, on each
 * collision, the colliding key's hash from the key object. Keys are compared as a dict
 * compares them: identity, then hash, then ==. */
typedef struct {
    Py_hash_t hash;
    PyObject *key;    /* NULL unless the slot is live */
    PyObject *value;
} IndexEntry;

typedef struct {
    PyObject_HEAD
    IndexEntry *table;
    uint8_t *tags;        /* per slot: TAG_EMPTY, TAG_REMOVED or index_tag(hash) */
    Py_ssize_t capacity;  /* a power of two */
    Py_ssize_t used;      /* live entries */
    Py_ssize_t filled;    /* live and removed entries */
    size_t version;       /* changes whenever an entry is added or removed */
} IndexObject;

static PyTypeObject Index_type;
#define INDEX_MIN_CAPACITY 8
#define TAG_EMPTY 0
#define TAG_REMOVED 1
#define TAG_LIVE 0x80

/* The tag of a live slot: the top 7 bits of the hash, with the live bit set. The slot
 * number comes from the low bits, so the two are independent. */
static inline uint8_t
index_tag(Py_hash_t hash)
{
    return (uint8_t)(TAG_LIVE | ((size_t)hash >> (8 * sizeof(size_t) - 7)));
}

static inline int
str_equal(PyObject *a, PyObject *b)
{
    Py_ssize_t len = PyUnicode_GET_LENGTH(a);
    return len == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
        && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), len * PyUnicode_KIND(a)) == 0;
}

/* The slot holding ``key``, or -1 with *free_slot set to where it would go; -2 on error. */
static Py_ssize_t
index_probe(IndexObject *ix, PyObject *key, Py_hash_t hash, Py_ssize_t *free_slot)
{
restart:;
    IndexEntry *table = ix->table;
    if (table == NULL) {
        if (free_slot != NULL) {
            *free_slot = -1;
        }
        return -1;
    }
    const uint8_t *tags = ix->tags;
    uint8_t tag = index_tag(hash);
    size_t version = ix->version;
    size_t mask = (size_t)ix->capacity - 1;
    size_t i = (size_t)hash & mask;
    Py_ssize_t first_removed = -1;
    for (;; i = (i + 1) & mask) {
        uint8_t t = tags[i];
        if (t == TAG_EMPTY) {
            if (free_slot != NULL) {
                *free_slot = first_removed >= 0 ? first_removed : (Py_ssize_t)i;
            }
            return -1;
        }
        if (t == TAG_REMOVED) {
            if (first_removed < 0) {
                first_removed = (Py_ssize_t)i;
            }
            continue;
        }
        if (t != tag) {
            continue;
        }
        IndexEntry *e = &table[i];
        if (e->key == key) {
            return (Py_ssize_t)i;
        }
        if (e->hash != hash) {
            continue;
        }
#if defined(__GNUC__) || defined(__clang__)
        /* The caller reads the order next: load it while the keys are compared. */
        __builtin_prefetch(e->value);
        __builtin_prefetch((char *)e->value + 128);
#endif
        if (PyUnicode_CheckExact(key) && PyUnicode_CheckExact(e->key)) {
            if (str_equal(key, e->key)) {
                return (Py_ssize_t)i;
            }
            continue;
        }
        /* __eq__ of another type may change the index: start again if it did. */
        PyObject *other = Py_NewRef(e->key);
        int equal = PyObject_RichCompareBool(other, key, Py_EQ);
        Py_DECREF(other);
        if (equal < 0) {
            return -2;
        }
        if (ix->table != table || ix->version != version) {
            goto restart;
        }
        if (equal) {
            return (Py_ssize_t)i;
        }
    }
}

static int
index_resize(IndexObject *ix, Py_ssize_t capacity)
{
    IndexEntry *table = PyMem_Calloc((size_t)capacity, sizeof(IndexEntry));
    uint8_t *tags = PyMem_Calloc((size_t)capacity, 1);
    if (table == NULL || tags == NULL) {
        PyMem_Free(table);
        PyMem_Free(tags);
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = (size_t)capacity - 1;
    for (Py_ssize_t j = 0; j < ix->capacity; j++) {
        if (ix->tags[j] & TAG_LIVE) {
            IndexEntry *e = &ix->table[j];
            size_t i = (size_t)e->hash & mask;
            while (tags[i] != TAG_EMPTY) {
                i = (i + 1) & mask;
            }
            table[i] = *e;
            tags[i] = ix->tags[j];
        }
    }
    PyMem_Free(ix->table);
    PyMem_Free(ix->tags);
    ix->table = table;
    ix->tags = tags;
    ix->capacity = capacity;
    ix->filled = ix->used;
    ix->version++;
    return 0;
}

/* Start loading the tag and the entry where a lookup of ``key`` begins. In an index
 * bigger than the CPU's caches the entry is a cache miss, and the work done before the
 * lookup hides it. Hashing a str also caches its hash for the lookup. */
static inline void
index_prefetch(IndexObject *ix, PyObject *key)
{
#if defined(__GNUC__) || defined(__clang__)
    if (ix->table != NULL && PyUnicode_CheckExact(key)) {
        Py_hash_t hash = PyObject_Hash(key);
        if (hash == -1) {
            PyErr_Clear();  /* the lookup itself reports it */
            return;
        }
        size_t i = (size_t)hash & ((size_t)ix->capacity - 1);
        __builtin_prefetch(&ix->tags[i]);
        __builtin_prefetch(&ix->table[i]);
    }
#endif
}

/* The value of ``key`` (borrowed), or NULL, with an error set only on failure. */
static PyObject *
index_get(IndexObject *ix, PyObject *key)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) {
        return NULL;
    }
    Py_ssize_t slot = index_probe(ix, key, hash, NULL);
    return slot >= 0 ? ix->table[slot].value : NULL;
}

/* The place of a key in an index, found when the index had ``version``. ``slot`` holds
 * the key, or is -1 and ``free_slot`` is where the key would go. A check can find the
 * place and a later change use it without a second probe, unless the index changed. */
typedef struct {
    IndexObject *index;
    Py_hash_t hash;
    Py_ssize_t slot, free_slot;
    size_t version;
} IndexPlace;

/* Find the place of ``key`` in ``ix``. Returns 0, or -1 on error. */
static int
index_locate(IndexObject *ix, PyObject *key, IndexPlace *place)
{
    place->index = ix;
    place->hash = PyObject_Hash(key);
    if (place->hash == -1) {
        return -1;
    }
    place->slot = index_probe(ix, key, place->hash, &place->free_slot);
    place->version = ix->version;
    return place->slot == -2 ? -1 : 0;
}

/* Map ``key`` to ``value`` at its place, found by index_locate for this key and found
 * again if the index changed since. With ``keep`` set, an existing value stays. Returns
 * the value now held (borrowed), or NULL on error. */
static PyObject *
index_put_at(IndexPlace *place, PyObject *key, PyObject *value, int keep)
{
    IndexObject *ix = place->index;
    if (ix->version != place->version && index_locate(ix, key, place) < 0) {
        return NULL;
    }
    /* At most half the slots in use or removed, so probe runs stay short. */
    if (place->slot < 0 && 2 * (ix->filled + 1) > ix->capacity) {
        Py_ssize_t capacity = INDEX_MIN_CAPACITY;
        while (capacity < 4 * (ix->used + 1)) {
            capacity *= 2;
        }
        /* After the resize the key is found only if a key's __eq__ inserted it. */
        if (index_resize(ix, capacity) < 0 || index_locate(ix, key, place) < 0) {
            return NULL;
        }
    }
    if (place->slot >= 0) {
        IndexEntry *e = &ix->table[place->slot];
        if (!keep) {
            Py_SETREF(e->value, Py_NewRef(value));
        }
        return e->value;
    }
    Py_ssize_t slot = place->free_slot;
    if (ix->tags[slot] == TAG_EMPTY) {
        ix->filled++;
    }
    IndexEntry *e = &ix->table[slot];
    e->hash = place->hash;
    e->key = Py_NewRef(key);
    e->value = Py_NewRef(value);
    ix->tags[slot] = index_tag(place->hash);
    ix->used++;
    ix->version++;
    return value;
}

/* Map ``key`` to ``value``. With ``keep`` set, an existing value stays. Returns the value
 * now held (borrowed), or NULL on error. */
static PyObject *
index_put(IndexObject *ix, PyObject *key, PyObject *value, int keep)
{
    IndexPlace place;
    if (index_locate(ix, key, &place) < 0) {
        return NULL;
    }
    return index_put_at(&place, key, value, keep);
}

static int
index_remove(IndexObject *ix, PyObject *key)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) {
        return -1;
    }
    Py_ssize_t slot = index_probe(ix, key, hash, NULL);
    if (slot == -2) {
        return -1;
    }
    if (slot == -1) {
        PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    IndexEntry *e = &ix->table[slot];
    PyObject *old_key = e->key, *old_value = e->value;
    e->key = NULL;
    e->value = NULL;
    ix->tags[slot] = TAG_REMOVED;
    ix->used--;
    ix->version++;
    Py_DECREF(old_key);
    Py_DECREF(old_value);
    return 0;
}

static PyObject *
Index_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "ClOrdIdIndex() takes no arguments");
        return NULL;
    }
    /* The table is allocated by the first insert. */
    return type->tp_alloc(type, 0);
}

static int
Index_traverse(IndexObject *ix, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < ix->capacity; i++) {
        if (ix->tags[i] & TAG_LIVE) {
            Py_VISIT(ix->table[i].key);
            Py_VISIT(ix->table[i].value);
        }
    }
    return 0;
}

static int
Index_clear(IndexObject *ix)
{
    IndexEntry *table = ix->table;
    uint8_t *tags = ix->tags;
    Py_ssize_t capacity = ix->capacity;
    ix->table = NULL;
    ix->tags = NULL;
    ix->capacity = 0;
    ix->used = ix->filled = 0;
    ix->version++;
    for (Py_ssize_t i = 0; table != NULL && i < capacity; i++) {
        if (tags[i] & TAG_LIVE) {
            Py_DECREF(table[i].key);
            Py_DECREF(table[i].value);
        }
    }
    PyMem_Free(table);
    PyMem_Free(tags);
    return 0;
}

static void
Index_dealloc(IndexObject *ix)
{
    PyObject_GC_UnTrack(ix);
    Index_clear(ix);
    Py_TYPE(ix)->tp_free((PyObject *)ix);
}

static Py_ssize_t
Index_length(IndexObject *ix)
{
    return ix->used;
}

static PyObject *
Index_subscript(IndexObject *ix, PyObject *key)
{
    PyObject *value = index_get(ix, key);
    if (value == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, key);
        }
        return NULL;
    }
    return Py_NewRef(value);
}

static int
Index_ass_subscript(IndexObject *ix, PyObject *key, PyObject *value)
{
    if (value == NULL) {
        return index_remove(ix, key);
    }
    return index_put(ix, key, value, 0) == NULL ? -1 : 0;
}

static int
Index_contains(IndexObject *ix, PyObject *key)
{
    PyObject *value = index_get(ix, key);
    return value != NULL ? 1 : (PyErr_Occurred() ? -1 : 0);
}

static PyObject *
Index_get(IndexObject *ix, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *value = index_get(ix, args[0]);
    if (value == NULL && PyErr_Occurred()) {
        return NULL;
    }
    return Py_NewRef(value != NULL ? value : (nargs == 2 ? args[1] : Py_None));
}

/* A list of the live entries: keys, values or (key, value) pairs. */
static PyObject *
index_list(IndexObject *ix, int what)
{
    PyObject *list = PyList_New(0);
    for (Py_ssize_t i = 0; list != NULL && i < ix->capacity; i++) {
        IndexEntry *e = &ix->table[i];
        if (!(ix->tags[i] & TAG_LIVE)) {
            continue;
        }
        PyObject *item = what == 0 ? Py_NewRef(e->key)
            : what == 1 ? Py_NewRef(e->value) : PyTuple_Pack(2, e->key, e->value);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_CLEAR(list);
        }
        Py_XDECREF(item);
    }
    return list;
}

static PyObject *
Index_keys(IndexObject *ix, PyObject *unused)
{
    return index_list(ix, 0);
}

static PyObject *
Index_values(IndexObject *ix, PyObject *unused)
{
    return index_list(ix, 1);
}

static PyObject *
Index_items(IndexObject *ix, PyObject *unused)
{
    return index_list(ix, 2);
}

static PyObject *
Index_iter(IndexObject *ix)
{
    PyObject *keys = index_list(ix, 0);
    if (keys == NULL) {
        return NULL;
    }
    PyObject *it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static PyObject *
Index_repr(IndexObject *ix)
{
    return PyUnicode_FromFormat("ClOrdIdIndex(%zd ClOrdIDs)", ix->used);
}

static PyMappingMethods Index_as_mapping = {
    .mp_length = (lenfunc)Index_length,
    .mp_subscript = (binaryfunc)Index_subscript,
    .mp_ass_subscript = (objobjargproc)Index_ass_subscript,
};

static PySequenceMethods Index_as_sequence = {
    .sq_contains = (objobjproc)Index_contains,
};

static PyMethodDef Index_methods[] = {
    {"get", (PyCFunction)(void (*)(void))Index_get, METH_FASTCALL,
     "get(clordid, default=None): the order that used the ClOrdID last, or default."},
    {"keys", (PyCFunction)Index_keys, METH_NOARGS, "A list of the ClOrdIDs, in no order."},
    {"values", (PyCFunction)Index_values, METH_NOARGS, "A list of the orders, in no order."},
    {"items", (PyCFunction)Index_items, METH_NOARGS, "A list of (ClOrdID, order) pairs, in no order."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Index_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._cengine.ClOrdIdIndex",
    .tp_basicsize = sizeof(IndexObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ClOrdIdIndex(): a session's ClOrdID (11) -> order index, used as a dict.",
    .tp_new = Index_new,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_traverse = (traverseproc)Index_traverse,
    .tp_clear = (inquiry)Index_clear,
    .tp_as_mapping = &Index_as_mapping,
    .tp_as_sequence = &Index_as_sequence,
    .tp_iter = (getiterfunc)Index_iter,
    .tp_repr = (reprfunc)Index_repr,
    .tp_methods = Index_methods,
    .tp_hash = PyObject_HashNotImplemented,
};

/* ------------------------------------------------------------------ counters */

/* ------------------------------------------------------------------ the order queue */

/* The orders of one price level, oldest first: the subset of OrderedDict that the engine
 * uses as an ordered set (q[order] = None, del q[order], order in q, len, iteration,
 * popitem and move_to_end). Orders are compared by identity, as the engine's orders
 * compare, so a lookup hashes the object's address and calls no Python code.
 *
 * Orders sit in an array in arrival order. A removed order leaves a hole until the next
 * compaction closes it. No order before ``start`` is live, so the first order is read
 * without a search. A table, probed linearly, maps an order's address to its position.
 * An OrderedDict allocates a node per order and reads its dict twice for each change. A
 * level that fills from the front and grows at the back also resizes its table of nodes
 * again and again. */
typedef struct {
    PyObject_HEAD
    PyObject **items;    /* orders by position, NULL where one was removed */
    Py_ssize_t cap;      /* length of items */
    Py_ssize_t start;    /* position of the first order, with nothing live before it */
    Py_ssize_t end;      /* one past the last order, so positions in use are [start, end) */
    Py_ssize_t count;    /* live orders */
    Py_ssize_t *table;   /* position + 1 of an order, or QUEUE_EMPTY or QUEUE_REMOVED */
    Py_ssize_t mask;     /* table size - 1 (the size is a power of two) */
    Py_ssize_t filled;   /* table slots not QUEUE_EMPTY */
    size_t version;      /* changes whenever membership or order changes */
} QueueObject;

static PyTypeObject Queue_type;
#define QUEUE_EMPTY 0
#define QUEUE_REMOVED (-1)
#define QUEUE_MIN_TABLE 8
/* An emptied queue keeps arrays up to this many slots for its next orders. */
#define QUEUE_KEEP 64

static inline size_t
queue_hash(PyObject *order)
{
    size_t h = (size_t)order >> 4;
    return (size_t)(((unsigned long long)h * 0x9E3779B97F4A7C15ULL) >> 24);
}

/* The table slot holding ``order``, or -1. */
static inline Py_ssize_t
queue_slot(QueueObject *q, PyObject *order)
{
    if (q->table == NULL) {
        return -1;
    }
    size_t mask = (size_t)q->mask;
    size_t i = queue_hash(order) & mask;
    for (;;) {
        Py_ssize_t v = q->table[i];
        if (v == QUEUE_EMPTY) {
            return -1;
        }
        if (v > 0 && q->items[v - 1] == order) {
            return (Py_ssize_t)i;
        }
        i = (i + 1) & mask;
    }
}

/* Record that ``order`` (not in the queue) is at ``pos``. The table has a free slot. */
static inline void
queue_table_put(QueueObject *q, PyObject *order, Py_ssize_t pos)
{
    size_t mask = (size_t)q->mask;
    size_t i = queue_hash(order) & mask;
    while (q->table[i] > 0) {
        i = (i + 1) & mask;
    }
    if (q->table[i] == QUEUE_EMPTY) {
        q->filled += 1;
    }
    q->table[i] = pos + 1;
}

/* A table for ``count`` orders, with room for as many more, or NULL (MemoryError). */
static Py_ssize_t *
queue_new_table(Py_ssize_t count, Py_ssize_t *mask)
{
    Py_ssize_t size = QUEUE_MIN_TABLE;
    while (size < 3 * (count + 1)) {
        size *= 2;
    }
    Py_ssize_t *table = PyMem_Calloc((size_t)size, sizeof(Py_ssize_t));
    if (table == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *mask = size - 1;
    return table;
}

/* Move the live orders to positions ``lead`` onwards, in order, in an array of at least
 * ``cap`` slots, and index them in a new table. Nothing changes on MemoryError. */
static int
queue_rebuild(QueueObject *q, Py_ssize_t cap, Py_ssize_t lead)
{
    Py_ssize_t mask;
    Py_ssize_t *table = queue_new_table(q->count + lead, &mask);
    if (table == NULL) {
        return -1;
    }
    PyObject **items = q->items;
    if (cap > q->cap || lead > q->start) {
        items = PyMem_Calloc((size_t)cap, sizeof(PyObject *));
        if (items == NULL) {
            PyMem_Free(table);
            PyErr_NoMemory();
            return -1;
        }
    }
    else {
        cap = q->cap;
    }
    Py_ssize_t j = lead;
    for (Py_ssize_t i = q->start; i < q->end; i++) {
        if (q->items[i] != NULL) {
            items[j++] = q->items[i];
        }
    }
    if (items != q->items) {
        PyMem_Free(q->items);
    }
    else {
        memset(items + j, 0, (size_t)(q->end > j ? q->end - j : 0) * sizeof(PyObject *));
    }
    PyMem_Free(q->table);
    q->items = items;
    q->cap = cap;
    q->start = lead;
    q->end = j;
    q->table = table;
    q->mask = mask;
    q->filled = 0;
    for (Py_ssize_t i = lead; i < j; i++) {
        queue_table_put(q, items[i], i);
    }
    q->version += 1;
    return 0;
}

/* Add ``order``, which must not be in the queue, at the back. Takes a new reference. */
static int
queue_append(QueueObject *q, PyObject *order)
{
    if (q->end == q->cap) {
        /* Close the holes when they are at least half the array, otherwise grow it. */
        Py_ssize_t cap = q->count * 2 <= q->cap && q->cap > 0 ? q->cap
            : (q->cap < 4 ? 4 : q->cap * 2);
        if (queue_rebuild(q, cap, 0) < 0) {
            return -1;
        }
    }
    else if (q->table == NULL || 3 * (q->filled + 1) > 2 * (q->mask + 1)) {
        /* Too few free slots in the table: close the holes in place too, because a new
         * table is sized for the live orders and scanning the holes at every rebuild
         * would cost O(capacity) per few appends. */
        if (queue_rebuild(q, q->cap, 0) < 0) {
            return -1;
        }
    }
    Py_INCREF(order);
    q->items[q->end] = order;
    queue_table_put(q, order, q->end);
    q->end += 1;
    q->count += 1;
    q->version += 1;
    return 0;
}

/* Take out the order in table slot ``slot`` and return it (the queue's reference). */
static PyObject *
queue_take(QueueObject *q, Py_ssize_t slot)
{
    Py_ssize_t pos = q->table[slot] - 1;
    PyObject *order = q->items[pos];
    q->items[pos] = NULL;
    q->table[slot] = QUEUE_REMOVED;
    q->count -= 1;
    q->version += 1;
    if (q->count == 0) {
        /* Empty: start afresh, keeping small arrays for the next orders. */
        if (q->mask + 1 > QUEUE_KEEP) {
            PyMem_Free(q->table);
            q->table = NULL;
            q->mask = 0;
        }
        else {
            memset(q->table, 0, (size_t)(q->mask + 1) * sizeof(Py_ssize_t));
        }
        if (q->cap > QUEUE_KEEP) {
            PyMem_Free(q->items);
            q->items = NULL;
            q->cap = 0;
        }
        else if (q->items != NULL) {
            memset(q->items, 0, (size_t)q->cap * sizeof(PyObject *));
        }
        q->filled = 0;
        q->start = q->end = 0;
    }
    else {
        /* Keep the first and the last position live, so that both ends are read in O(1)
         * and each hole is passed over once. */
        if (pos == q->start) {
            while (q->items[q->start] == NULL) {
                q->start += 1;
            }
        }
        if (pos == q->end - 1) {
            while (q->items[q->end - 1] == NULL) {
                q->end -= 1;
            }
        }
    }
    return order;
}

/* Return the position of the last order of a queue that is not empty. queue_take keeps
 * that position live. */
static inline Py_ssize_t
queue_last_pos(QueueObject *q)
{
    return q->end - 1;
}

static PyObject *
Queue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) > 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0)) {
        PyErr_SetString(PyExc_TypeError, "OrderQueue() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static int
Queue_traverse(QueueObject *q, visitproc visit, void *arg)
{
    for (Py_ssize_t i = q->start; i < q->end; i++) {
        Py_VISIT(q->items[i]);
    }
    return 0;
}

static int
Queue_clear(QueueObject *q)
{
    PyObject **items = q->items;
    Py_ssize_t start = q->start, end = q->end;
    /* Empty first: releasing an order may run code that looks at this queue. */
    q->items = NULL;
    q->cap = q->start = q->end = q->count = q->filled = 0;
    PyMem_Free(q->table);
    q->table = NULL;
    q->mask = 0;
    q->version += 1;
    for (Py_ssize_t i = start; i < end; i++) {
        Py_XDECREF(items[i]);
    }
    PyMem_Free(items);
    return 0;
}

static void
Queue_dealloc(QueueObject *q)
{
    PyObject_GC_UnTrack(q);
    Py_TRASHCAN_BEGIN(q, Queue_dealloc)
    Queue_clear(q);
    Py_TYPE(q)->tp_free((PyObject *)q);
    Py_TRASHCAN_END
}

static Py_ssize_t
Queue_length(QueueObject *q)
{
    return q->count;
}

static int
Queue_contains(QueueObject *q, PyObject *order)
{
    return queue_slot(q, order) >= 0;
}

static PyObject *
Queue_subscript(QueueObject *q, PyObject *order)
{
    if (queue_slot(q, order) < 0) {
        PyErr_SetObject(PyExc_KeyError, order);
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
Queue_ass_subscript(QueueObject *q, PyObject *order, PyObject *value)
{
    Py_ssize_t slot = queue_slot(q, order);
    if (value == NULL) {
        if (slot < 0) {
            PyErr_SetObject(PyExc_KeyError, order);
            return -1;
        }
        Py_DECREF(queue_take(q, slot));
        return 0;
    }
    if (value != Py_None) {
        PyErr_Format(PyExc_TypeError,
                     "an OrderQueue holds orders as a set does: the value must be None, got %R",
                     value);
        return -1;
    }
    return slot >= 0 ? 0 : queue_append(q, order);
}

static PyObject *
Queue_popitem(QueueObject *q, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"last", NULL};
    int last = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:popitem", kwlist, &last)) {
        return NULL;
    }
    if (q->count == 0) {
        PyErr_SetString(PyExc_KeyError, "popitem(): OrderQueue is empty");
        return NULL;
    }
    PyObject *order = q->items[last ? queue_last_pos(q) : q->start];
    PyObject *pair = PyTuple_Pack(2, order, Py_None);
    if (pair == NULL) {
        return NULL;
    }
    Py_DECREF(queue_take(q, queue_slot(q, order)));
    return pair;
}

static PyObject *
Queue_move_to_end(QueueObject *q, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"key", "last", NULL};
    PyObject *order;
    int last = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:move_to_end", kwlist, &order, &last)) {
        return NULL;
    }
    Py_ssize_t slot = queue_slot(q, order);
    if (slot < 0) {
        PyErr_SetObject(PyExc_KeyError, order);
        return NULL;
    }
    Py_ssize_t pos = q->table[slot] - 1;
    if (pos == (last ? queue_last_pos(q) : q->start)) {
        return Py_NewRef(Py_None);
    }
    if (last) {
        /* Make room first, so that a MemoryError leaves the order where it was. */
        if (q->end == q->cap || 3 * (q->filled + 1) > 2 * (q->mask + 1)) {
            Py_ssize_t cap = q->count * 2 <= q->cap ? q->cap : q->cap * 2;
            if (queue_rebuild(q, cap, 0) < 0) {
                return NULL;
            }
            slot = queue_slot(q, order);
        }
        PyObject *moved = queue_take(q, slot);
        q->items[q->end] = moved;
        queue_table_put(q, moved, q->end);
        q->end += 1;
        q->count += 1;
        return Py_NewRef(Py_None);
    }
    if (q->start == 0 || 3 * (q->filled + 1) > 2 * (q->mask + 1)) {
        /* Leave as many free positions before the orders, and after them, as there are
         * orders. The O(count) rebuild then comes only after about count more moves to
         * the front or appends. */
        Py_ssize_t cap = 3 * q->count > q->cap ? 3 * q->count : q->cap;
        if (queue_rebuild(q, cap, q->count) < 0) {
            return NULL;
        }
        slot = queue_slot(q, order);
    }
    Py_ssize_t start = q->start;
    PyObject *moved = queue_take(q, slot);
    /* queue_take moves start past the hole only when the order was first, which it is
     * not, so start - 1 is free. */
    q->start = start - 1;
    q->items[q->start] = moved;
    queue_table_put(q, moved, q->start);
    q->count += 1;
    return Py_NewRef(Py_None);
}

static PyObject *
Queue_repr(QueueObject *q)
{
    /* An order whose repr shows its own queue gets "...", as in an OrderedDict. */
    int inside = Py_ReprEnter((PyObject *)q);
    if (inside != 0) {
        return inside > 0 ? PyUnicode_FromString("...") : NULL;
    }
    PyObject *list = PySequence_List((PyObject *)q);
    PyObject *text = list == NULL ? NULL : PyUnicode_FromFormat("OrderQueue(%R)", list);
    Py_XDECREF(list);
    Py_ReprLeave((PyObject *)q);
    return text;
}

/* Iteration, oldest first. As with an OrderedDict, a change of the queue ends it with
 * RuntimeError, but an iterator that has returned the last order (or began on an empty
 * queue) is already exhausted and raises nothing. ``pos`` is the position of the next
 * order, found when the one before is returned. */
typedef struct {
    PyObject_HEAD
    QueueObject *queue;
    Py_ssize_t pos;
    size_t version;
} QueueIterObject;

static PyTypeObject QueueIter_type;

static PyObject *
Queue_iter(QueueObject *q)
{
    QueueIterObject *it = PyObject_GC_New(QueueIterObject, &QueueIter_type);
    if (it == NULL) {
        return NULL;
    }
    it->queue = q->count > 0 ? (QueueObject *)Py_NewRef(q) : NULL;
    it->pos = q->start;
    it->version = q->version;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *
QueueIter_next(QueueIterObject *it)
{
    QueueObject *q = it->queue;
    if (q == NULL) {
        return NULL;
    }
    if (q->version != it->version) {
        it->queue = NULL;  /* exhausted from now on */
        Py_DECREF(q);
        PyErr_SetString(PyExc_RuntimeError, "OrderQueue changed during iteration");
        return NULL;
    }
    /* Unchanged since the last call, so ``pos`` is still the live position it found. */
    PyObject *order = Py_NewRef(q->items[it->pos]);
    do {
        it->pos += 1;
    } while (it->pos < q->end && q->items[it->pos] == NULL);
    if (it->pos == q->end) {
        it->queue = NULL;
        Py_DECREF(q);
    }
    return order;
}

static int
QueueIter_traverse(QueueIterObject *it, visitproc visit, void *arg)
{
    Py_VISIT(it->queue);
    return 0;
}

static void
QueueIter_dealloc(QueueIterObject *it)
{
    PyObject_GC_UnTrack(it);
    Py_XDECREF(it->queue);
    PyObject_GC_Del(it);
}

static PyTypeObject QueueIter_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._cengine.OrderQueueIterator",
    .tp_basicsize = sizeof(QueueIterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)QueueIter_dealloc,
    .tp_traverse = (traverseproc)QueueIter_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)QueueIter_next,
};

static PyMappingMethods Queue_as_mapping = {
    .mp_length = (lenfunc)Queue_length,
    .mp_subscript = (binaryfunc)Queue_subscript,
    .mp_ass_subscript = (objobjargproc)Queue_ass_subscript,
};

static PySequenceMethods Queue_as_sequence = {
    .sq_contains = (objobjproc)Queue_contains,
};

static PyMethodDef Queue_methods[] = {
    {"popitem", (PyCFunction)(void (*)(void))Queue_popitem, METH_VARARGS | METH_KEYWORDS,
     "popitem(last=True): remove the newest (or, with last=False, the oldest) order and "
     "return (order, None)."},
    {"move_to_end", (PyCFunction)(void (*)(void))Queue_move_to_end, METH_VARARGS | METH_KEYWORDS,
     "move_to_end(order, last=True): move an order to the back (or the front)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Queue_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._cengine.OrderQueue",
    .tp_basicsize = sizeof(QueueObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "OrderQueue(): the orders of a price level, oldest first, compared by identity.\n\n"
              "Takes the OrderedDict operations the engine uses on a level: q[order] = None,\n"
              "del q[order], order in q, len(q), iteration, popitem() and move_to_end().",
    .tp_new = Queue_new,
    .tp_dealloc = (destructor)Queue_dealloc,
    .tp_traverse = (traverseproc)Queue_traverse,
    .tp_clear = (inquiry)Queue_clear,
    .tp_repr = (reprfunc)Queue_repr,
    .tp_iter = (getiterfunc)Queue_iter,
    .tp_as_mapping = &Queue_as_mapping,
    .tp_as_sequence = &Queue_as_sequence,
    .tp_methods = Queue_methods,
};

/* The level operations of the fast paths. They take a level's orders only as an
 * OrderQueue, except level_append, which also rests an order in another mapping as
 * Python would. */
static inline Py_ssize_t
level_count(PyObject *orders)
{
    return ((QueueObject *)orders)->count;
}

static inline int
level_append(PyObject *orders, PyObject *order)
{
    if (Py_IS_TYPE(orders, &Queue_type)) {
        QueueObject *q = (QueueObject *)orders;
        return queue_slot(q, order) >= 0 ? 0 : queue_append(q, order);
    }
    return PyObject_SetItem(orders, order, Py_None);
}

static inline int
level_remove(PyObject *orders, PyObject *order)
{
    QueueObject *q = (QueueObject *)orders;
    Py_ssize_t slot = queue_slot(q, order);
    if (slot < 0) {
        PyErr_SetObject(PyExc_KeyError, order);
        return -1;
    }
    Py_DECREF(queue_take(q, slot));
    return 0;
}

/* The C twin of engine.engine.Counters. The fast paths read and write its fields as C
 * integers, and Python code reads and writes the same fields as attributes, so nothing is copied
 * when a command passes from one to the other. */
typedef struct {
    PyObject_HEAD
    long long order_count, exec_count, trade_count, seq;
} CountersObject;

static PyMemberDef Counters_members[] = {
    {"order_count", T_LONGLONG, offsetof(CountersObject, order_count), 0,
     "the number of the last OrderID (37)"},
    {"exec_count", T_LONGLONG, offsetof(CountersObject, exec_count), 0,
     "the number of the last ExecID (17)"},
    {"trade_count", T_LONGLONG, offsetof(CountersObject, trade_count), 0,
     "the number of the last TradeID (1003)"},
    {"seq", T_LONGLONG, offsetof(CountersObject, seq), 0,
     "time priority: grows each time an order joins the back of a level"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject Counters_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._cengine.Counters",
    .tp_basicsize = sizeof(CountersObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Counters(): the engine's numbering, all starting at 0.",
    .tp_new = PyType_GenericNew,
    .tp_members = Counters_members,
};

/* ------------------------------------------------------------------ the accelerator */

#define CACHE_WAYS 4

typedef struct {
    PyObject_HEAD
    PyObject *engine;
    CountersObject *counters; /* engine._counters */
    PyObject *books;         /* symbol -> OrderBook */
    PyObject *orders;        /* every Order, the one numbered n at index n - 1 */
    PyObject *by_cl_ord_id;  /* session_id -> ClOrdID -> Order */
    PyObject *firms;         /* session_id -> Firm */
    PyObject *order_prefix, *exec_prefix, *trade_prefix;
    PyObject *fallback;      /* MatchingEngine.process, unbound */
    /* The session and symbol strings of the latest commands, compared by identity, with
     * each session's ClOrdID index and firm and each symbol's book. The commands of one
     * session carry the same strings, so most of them skip the dict lookups. Each cached
     * string is held, so its address cannot come to name another string. No cached value
     * changes while the engine lives, because a session's index and a symbol's book are
     * added once and never replaced, and the firms are fixed when the engine is built. */
    PyObject *session_keys[CACHE_WAYS], *session_indexes[CACHE_WAYS], *session_firms[CACHE_WAYS];
    PyObject *symbol_keys[CACHE_WAYS], *symbol_books[CACHE_WAYS];
    int next_session, next_symbol;
} Accel;

/* Find a session's ClOrdID index and firm (or None), both borrowed. Returns 1, or 0 when
 * the session has no Index yet, or -1 on error. */
static int
session_of(Accel *a, PyObject *session_id, IndexObject **index, PyObject **firm)
{
    for (int i = 0; i < CACHE_WAYS; i++) {
        if (a->session_keys[i] == session_id) {
            *index = (IndexObject *)a->session_indexes[i];
            *firm = a->session_firms[i];
            return 1;
        }
    }
    PyObject *found = PyDict_GetItemWithError(a->by_cl_ord_id, session_id);
    if (found == NULL || Py_TYPE(found) != &Index_type) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *f = PyDict_GetItemWithError(a->firms, session_id);
    if (f == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        f = Py_None;
    }
    int i = a->next_session;
    a->next_session = (i + 1) % CACHE_WAYS;
    Py_XSETREF(a->session_keys[i], Py_NewRef(session_id));
    Py_XSETREF(a->session_indexes[i], Py_NewRef(found));
    Py_XSETREF(a->session_firms[i], Py_NewRef(f));
    *index = (IndexObject *)found;
    *firm = f;
    return 1;
}

/* Return the book of a symbol (borrowed), or NULL, with an error set only on failure. */
static PyObject *
book_of(Accel *a, PyObject *symbol)
{
    for (int i = 0; i < CACHE_WAYS; i++) {
        if (a->symbol_keys[i] == symbol) {
            return a->symbol_books[i];
        }
    }
    PyObject *book = PyDict_GetItemWithError(a->books, symbol);
    if (book == NULL || !PyUnicode_CheckExact(symbol)) {
        return book;
    }
    int i = a->next_symbol;
    a->next_symbol = (i + 1) % CACHE_WAYS;
    Py_XSETREF(a->symbol_keys[i], Py_NewRef(symbol));
    Py_XSETREF(a->symbol_books[i], Py_NewRef(book));
    return book;
}

/* Call a method of the engine. The counters need no copying: Python code reads and
 * writes the same CountersObject. */
static PyObject *
call_engine(Accel *a, PyObject *name, PyObject *arg1, PyObject *arg2, PyObject *arg3)
{
    PyObject *args[4] = {a->engine, arg1, arg2, arg3};
    size_t nargs = arg3 != NULL ? 4 : (arg2 != NULL ? 3 : 2);
    return PyObject_VectorcallMethod(name, args, nargs, NULL);
}

/* The side of the book an order of ``side`` rests on, and the opposite one (new
 * references). */
static int
book_sides(PyObject *book, PyObject *side, PyObject **own, PyObject **opposite)
{
    PyObject *bids = SLOT(book, book_off[B_BIDS]);
    PyObject *asks = SLOT(book, book_off[B_ASKS]);
    *own = Py_NewRef(side == BUY ? bids : asks);
    *opposite = Py_NewRef(side == BUY ? asks : bids);
    return 0;
}

/* Empty levels kept for reuse: a book spread over many prices opens and closes a level
 * for most orders, and a kept level saves building the level and its OrderedDict. Only
 * a level that nothing else refers to is kept, so no caller can see it reused. */
#define SPARE_LEVELS 64
static PyObject *spare_levels[SPARE_LEVELS];
static int spare_level_count;

static void
keep_or_release(PyObject *level)
{
    PyObject *orders = SLOT(level, level_off[L_ORDERS]);
    if (Py_REFCNT(level) == 1 && spare_level_count < SPARE_LEVELS && orders != NULL
        && Py_IS_TYPE(orders, &Queue_type) && Py_REFCNT(orders) == 1
        && ((QueueObject *)orders)->count == 0) {
        /* A kept level refers to nothing of the book it left. */
        set_slot_ref(level, level_off[L_PRICE], Py_None);
        set_slot_ref(level, level_off[L_TOTAL_QTY], s_zero);
        set_slot_ref(level, level_off[L_LEAVES_QTY], s_zero);
        spare_levels[spare_level_count++] = level;
        return;
    }
    Py_DECREF(level);
}

/* A level for ``price``, empty, from the spare ones or new; NULL on error. */
static PyObject *
new_level(PyObject *price)
{
    if (spare_level_count > 0) {
        PyObject *level = spare_levels[--spare_level_count];
        set_slot_ref(level, level_off[L_PRICE], price);
        return level;
    }
    PyObject *level = new_untracked(PriceLevel_type);
    if (level == NULL) {
        return NULL;
    }
    SLOT(level, level_off[L_PRICE]) = Py_NewRef(price);
    SLOT(level, level_off[L_TOTAL_QTY]) = Py_NewRef(s_zero);
    SLOT(level, level_off[L_LEAVES_QTY]) = Py_NewRef(s_zero);
    SLOT(level, level_off[L_ORDERS]) = Queue_type.tp_alloc(&Queue_type, 0);
    if (SLOT(level, level_off[L_ORDERS]) == NULL) {
        Py_DECREF(level);
        return NULL;
    }
    PyObject_GC_UnTrack(SLOT(level, level_off[L_ORDERS]));
    return level;
}

/* Take ``level``, empty, out of a side, where it is the value of ``key``, as
 * BookSide.drop_level does. */
static int
drop_level(PyObject *side, PyObject *key, PyObject *level)
{
    PyObject *levels = SLOT(side, side_off[S_LEVELS]);
    PyObject *keys = SLOT(side, side_off[S_KEYS]);
    Py_INCREF(level);
    if (PyDict_DelItem(levels, key) < 0) {
        Py_DECREF(level);
        return -1;
    }
    if (Py_IS_TYPE(level, PriceLevel_type)) {
        keep_or_release(level);
    }
    else {
        Py_DECREF(level);
    }
    Py_ssize_t n = PyList_GET_SIZE(keys);
    if (n > 0 && PyList_GET_ITEM(keys, n - 1) == key) {
        return PyList_SetSlice(keys, n - 1, n, NULL);
    }
    int ok = 1;
    long long target = as_ll(key, &ok);
    Py_ssize_t lo = 0, hi = n;
    if (ok) {
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            long long value = as_ll(PyList_GET_ITEM(keys, mid), &ok);
            if (!ok) {
                break;
            }
            if (value < target) {
                lo = mid + 1;
            }
            else {
                hi = mid;
            }
        }
    }
    if (!ok) {
        /* Keys beyond the C range: do it as Python would. */
        PyObject *index = PyObject_CallMethod(keys, "index", "O", key);
        if (index == NULL) {
            return -1;
        }
        lo = PyLong_AsSsize_t(index);
        Py_DECREF(index);
        if (lo == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return PyList_SetSlice(keys, lo, lo + 1, NULL);
}

/* Insert ``key`` (a new level) into the ascending key list of a side. */
static int
insert_key(PyObject *keys, PyObject *key, long long key_value)
{
    Py_ssize_t n = PyList_GET_SIZE(keys);
    int ok = 1;
    if (n == 0) {
        return PyList_Append(keys, key);
    }
    long long last = as_ll(PyList_GET_ITEM(keys, n - 1), &ok);
    if (ok && key_value > last) {
        return PyList_Append(keys, key);
    }
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        PyObject *item = PyList_GET_ITEM(keys, mid);
        int fits = 1;
        long long value = as_ll(item, &fits);
        /* bisect.insort is insort_right: equal keys go after. A key beyond the C range
         * (an int, as every key is) is compared as Python compares it. */
        int before = fits ? key_value < value : PyObject_RichCompareBool(key, item, Py_LT);
        if (before < 0) {
            return -1;
        }
        if (before) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    return PyList_Insert(keys, lo, key);
}

/* The key of the level ``order`` rests in on a side whose sign is ``sign`` (a new
 * reference). A bid's key is its price, so the order's own int object serves. */
static PyObject *
level_key(PyObject *order, long long sign, long long key_value)
{
    PyObject *price = SLOT(order, order_off[O_PRICE]);
    if (sign == 1 && PyLong_CheckExact(price)) {
        return Py_NewRef(price);
    }
    return PyLong_FromLongLong(key_value);
}

/* Rest a live order at the back of its level, as MatchingEngine._rest does for an order
 * without a display quantity. */
static int
rest(CountersObject *c, PyObject *order, PyObject *side_obj, long long price, long long leaves)
{
    c->seq += 1;
    if (set_slot_ll(order, order_off[O_SEQ], c->seq) < 0) {
        return -1;
    }
    set_slot_ref(order, order_off[O_VISIBLE_QTY], SLOT(order, order_off[O_LEAVES_QTY]));
    long long sign = PyLong_AsLongLong(SLOT(side_obj, side_off[S_SIGN]));
    if (sign == -1 && PyErr_Occurred()) {
        return -1;
    }
    long long key_value = sign * price;
    PyObject *key = level_key(order, sign, key_value);
    if (key == NULL) {
        return -1;
    }
    PyObject *levels = SLOT(side_obj, side_off[S_LEVELS]);
    PyObject *level = PyDict_GetItemWithError(levels, key);
    if (level == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        level = new_level(SLOT(order, order_off[O_PRICE]));
        if (level == NULL) {
            goto error;
        }
        if (PyDict_SetItem(levels, key, level) < 0
            || insert_key(SLOT(side_obj, side_off[S_KEYS]), key, key_value) < 0) {
            Py_DECREF(level);
            goto error;
        }
        Py_DECREF(level);  /* the levels dict keeps a reference */
    }
    Py_DECREF(key);
    if (level_append(SLOT(level, level_off[L_ORDERS]), order) < 0) {
        return -1;
    }
    int ok = 1;
    long long total = as_ll(SLOT(level, level_off[L_TOTAL_QTY]), &ok);
    long long level_leaves = as_ll(SLOT(level, level_off[L_LEAVES_QTY]), &ok);
    if (ok) {
        return set_level_qty(level, total + leaves, level_leaves + leaves);
    }
    /* Totals beyond the C range: Python integers. */
    PyObject *qty = PyLong_FromLongLong(leaves);
    if (qty == NULL) {
        return -1;
    }
    PyObject *t = PyNumber_Add(SLOT(level, level_off[L_TOTAL_QTY]), qty);
    PyObject *l = t == NULL ? NULL : PyNumber_Add(SLOT(level, level_off[L_LEAVES_QTY]), qty);
    Py_DECREF(qty);
    if (l == NULL) {
        Py_XDECREF(t);
        return -1;
    }
    set_slot(level, level_off[L_TOTAL_QTY], t);
    set_slot(level, level_off[L_LEAVES_QTY], l);
    return 0;

error:
    Py_DECREF(key);
    return -1;
}

/* Return the first order (borrowed) of a level's OrderQueue, which must not be empty. */
static inline PyObject *
first_order(PyObject *orders)
{
    QueueObject *q = (QueueObject *)orders;
    return q->items[q->start];
}

/* The matching loop of MatchingEngine._match for an aggressor without terms,
 * appending TRADE events and Trades. Returns 1 when self-match prevention
 * cancelled what is left of the order, 0 otherwise, -1 on error. */
static int
match(Accel *a, CountersObject *c, PyObject *order, PyObject *book, PyObject *opposite,
      long long limit_key, PyObject *events)
{
    PyObject *keys = SLOT(opposite, side_off[S_KEYS]);
    PyObject *levels = SLOT(opposite, side_off[S_LEVELS]);
    PyObject *firm = SLOT(order, order_off[O_FIRM]);
    int ok = 1;
    long long leaves = as_ll(SLOT(order, order_off[O_LEAVES_QTY]), &ok);
    long long cum_qty = as_ll(SLOT(order, order_off[O_CUM_QTY]), &ok);
    long long cum_notional = as_ll(SLOT(order, order_off[O_CUM_NOTIONAL]), &ok);
    long long take = 0;
    PyObject *traded_px_ref = NULL;
    /* The aggressor's quantities after the last fill, and that fill's quantity. The
     * order and the book take these objects at the end. */
    PyObject *last_cum = NULL, *last_leaves = NULL, *last_notional = NULL, *last_take = NULL;
    int delegate = !ok;
    int result = 0;
    /* Whether the order's firm prevents self-matches (Order.self_match is not None). */
    int self_match = 0;
    if (firm != Py_None) {
        if (Py_IS_TYPE(firm, Firm_type)) {
            self_match = SLOT(firm, firm_off[F_SELF_MATCH_PREVENTION]) != SMP_NONE;
        }
        else {
            delegate = 1;
        }
    }

    while (!delegate && PyList_GET_SIZE(keys) > 0) {
        PyObject *key = PyList_GET_ITEM(keys, PyList_GET_SIZE(keys) - 1);
        long long key_value = as_ll(key, &ok);
        if (!ok) {
            delegate = 1;
            break;
        }
        if (key_value < limit_key) {
            break;
        }
        Py_INCREF(key);
        PyObject *level = PyDict_GetItemWithError(levels, key);
        if (level == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetObject(PyExc_KeyError, key);
            }
            Py_DECREF(key);
            goto error;
        }
        PyObject *orders = SLOT(level, level_off[L_ORDERS]);
        PyObject *price_obj = SLOT(level, level_off[L_PRICE]);
        long long price = as_ll(price_obj, &ok);
        long long level_total = as_ll(SLOT(level, level_off[L_TOTAL_QTY]), &ok);
        long long level_leaves = as_ll(SLOT(level, level_off[L_LEAVES_QTY]), &ok);
        if (!ok || price >= SMALL_BOUND || !Py_IS_TYPE(orders, &Queue_type)) {
            Py_DECREF(key);
            delegate = 1;
            break;
        }
        while (level_count(orders) > 0) {
            PyObject *resting = first_order(orders);
            if ((self_match && SLOT(resting, order_off[O_FIRM]) == firm)
                || SLOT(resting, order_off[O_TERMS]) != Py_None) {
                delegate = 1;
                break;
            }
            long long r_visible = as_ll(SLOT(resting, order_off[O_VISIBLE_QTY]), &ok);
            long long r_leaves = as_ll(SLOT(resting, order_off[O_LEAVES_QTY]), &ok);
            long long r_cum = as_ll(SLOT(resting, order_off[O_CUM_QTY]), &ok);
            long long r_notional = as_ll(SLOT(resting, order_off[O_CUM_NOTIONAL]), &ok);
            take = r_visible < leaves ? r_visible : leaves;
            if (!ok || take >= SMALL_BOUND || r_notional > BIG_BOUND / 2
                || cum_notional > BIG_BOUND / 2) {
                delegate = 1;
                break;
            }
            long long notional = take * price;
            Py_INCREF(resting);
            r_cum += take;
            r_leaves -= take;
            r_visible -= take;
            r_notional += notional;
            level_total -= take;
            level_leaves -= take;
            leaves -= take;
            cum_qty += take;
            cum_notional += notional;
            /* An order that shows all of itself has visible_qty equal to leaves_qty: one
             * int object serves both, which saves an allocation per fill. */
            if (set_slot_ll(resting, order_off[O_CUM_QTY], r_cum) < 0
                || set_slot_ll(resting, order_off[O_LEAVES_QTY], r_leaves) < 0
                || (r_visible == r_leaves
                    ? (set_slot_ref(resting, order_off[O_VISIBLE_QTY],
                                    SLOT(resting, order_off[O_LEAVES_QTY])), 0)
                    : set_slot_ll(resting, order_off[O_VISIBLE_QTY], r_visible)) < 0
                || set_slot_ll(resting, order_off[O_CUM_NOTIONAL], r_notional) < 0
                || set_level_qty(level, level_total, level_leaves) < 0) {
                Py_DECREF(resting);
                Py_DECREF(key);
                goto error;
            }
            if (r_leaves) {
                set_slot_ref(resting, order_off[O_ORD_STATUS], ST_PARTIALLY_FILLED);
            }
            else {
                set_slot_ref(resting, order_off[O_ORD_STATUS], ST_FILLED);
                set_slot_ref(resting, order_off[O_SEQ], s_zero);
                if (level_remove(orders, resting) < 0) {
                    Py_DECREF(resting);
                    Py_DECREF(key);
                    goto error;
                }
            }

            c->trade_count += 1;
            c->exec_count += 2;
            PyObject *trade_id = make_id(a->trade_prefix, c->trade_count);
            PyObject *exec_a = trade_id ? make_id(a->exec_prefix, c->exec_count - 1) : NULL;
            PyObject *exec_r = exec_a ? make_id(a->exec_prefix, c->exec_count) : NULL;
            if (exec_r == NULL) {
                Py_XDECREF(trade_id);
                Py_XDECREF(exec_a);
                Py_DECREF(resting);
                Py_DECREF(key);
                goto error;
            }
            Py_XSETREF(last_cum, PyLong_FromLongLong(cum_qty));
            Py_XSETREF(last_leaves, PyLong_FromLongLong(leaves));
            Py_XSETREF(last_notional, PyLong_FromLongLong(cum_notional));
            Py_XSETREF(last_take, PyLong_FromLongLong(take));
            int failed = 1;
            if (last_cum == NULL || last_leaves == NULL || last_notional == NULL
                || last_take == NULL) {
                Py_DECREF(exec_a);
                Py_DECREF(exec_r);
            }
            else {
                failed = append_fill(events, order, resting, exec_a, exec_r, trade_id,
                                     last_take, leaves == 0, last_cum, last_leaves,
                                     last_notional, price_obj);
            }
            Py_DECREF(trade_id);
            Py_DECREF(resting);
            if (failed) {
                Py_DECREF(key);
                goto error;
            }
            Py_XSETREF(traded_px_ref, Py_NewRef(price_obj));
            if (!leaves) {
                break;
            }
        }
        if (!delegate && level_count(orders) == 0 && drop_level(opposite, key, level) < 0) {
            Py_DECREF(key);
            goto error;
        }
        Py_DECREF(key);
        if (!leaves || delegate) {
            break;
        }
    }

    /* Store the aggressor's state, as _match does at its end. */
    if (last_cum != NULL) {
        set_slot_ref(order, order_off[O_LEAVES_QTY], last_leaves);
        set_slot_ref(order, order_off[O_CUM_QTY], last_cum);
        set_slot_ref(order, order_off[O_CUM_NOTIONAL], last_notional);
    }
    if (traded_px_ref != NULL) {
        set_slot_ref(book, book_off[B_LAST_PX], traded_px_ref);
        set_slot_ref(book, book_off[B_LAST_QTY], last_take);
    }
    Py_CLEAR(last_cum);
    Py_CLEAR(last_leaves);
    Py_CLEAR(last_notional);
    Py_CLEAR(last_take);
    if (delegate) {
        /* The Python loop carries on from here and sets the final status. */
        PyObject *r = call_engine(a, s_match, order, book, events);
        if (r == NULL) {
            goto error;
        }
        result = PyObject_IsTrue(r);
        Py_DECREF(r);
        Py_XDECREF(traded_px_ref);
        return result;
    }
    if (leaves == 0) {
        set_slot_ref(order, order_off[O_ORD_STATUS], ST_FILLED);
    }
    else if (cum_qty) {
        set_slot_ref(order, order_off[O_ORD_STATUS], ST_PARTIALLY_FILLED);
    }
    Py_XDECREF(traded_px_ref);
    return 0;

error:
    Py_XDECREF(traded_px_ref);
    Py_XDECREF(last_cum);
    Py_XDECREF(last_leaves);
    Py_XDECREF(last_notional);
    Py_XDECREF(last_take);
    return -1;
}

/* Rest what is left after matching, or cancel it when self-match prevention decided so. */
static int
after_match(Accel *a, CountersObject *c, PyObject *order, PyObject *book, PyObject *own,
            long long price, int incoming_cancelled, PyObject *events)
{
    if (incoming_cancelled) {
        PyObject *e = call_engine(a, s_cancel_remainder, order, SELF_MATCH_INCOMING_TEXT, NULL);
        if (e == NULL) {
            return -1;
        }
        int r = PyList_Append(events, e);
        Py_DECREF(e);
        return r;
    }
    int ok = 1;
    long long leaves = as_ll(SLOT(order, order_off[O_LEAVES_QTY]), &ok);
    if (!ok) {
        PyErr_SetString(PyExc_OverflowError, "leaves_qty out of the fast path's range");
        return -1;
    }
    if (leaves) {
        return rest(c, order, own, price, leaves);
    }
    return 0;
}

/* Match an order that may trade, then rest or cancel what is left; run the stops. */
static int
execute(Accel *a, CountersObject *c, PyObject *order, PyObject *book, PyObject *side,
        long long price, PyObject *events)
{
    PyObject *own, *opposite;
    if (book_sides(book, side, &own, &opposite) < 0) {
        return -1;
    }
    int result = -1;
    long long sign = side == BUY ? -1 : 1;  /* opposite side's key sign */
    long long limit_key = sign * price;
    PyObject *keys = SLOT(opposite, side_off[S_KEYS]);
    Py_ssize_t n = PyList_GET_SIZE(keys);
    int crosses = 0;
    if (n > 0) {
        int ok = 1;
        long long best = as_ll(PyList_GET_ITEM(keys, n - 1), &ok);
        crosses = !ok || best >= limit_key;
    }
    int incoming_cancelled = 0;
    if (crosses) {
        incoming_cancelled = match(a, c, order, book, opposite, limit_key, events);
        if (incoming_cancelled < 0) {
            goto done;
        }
    }
    if (after_match(a, c, order, book, own, price, incoming_cancelled, events) < 0) {
        goto done;
    }
    PyObject *stops = SLOT(book, book_off[B_STOPS]);
    if (stops == NULL || !PyDict_Check(stops) || PyDict_GET_SIZE(stops) > 0) {
        PyObject *r = call_engine(a, s_run_stops, book, events, NULL);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
    }
    result = 0;
done:
    Py_DECREF(own);
    Py_DECREF(opposite);
    return result;
}

/* The instrument's checks of a plain limit order's price and quantity, as
 * engine.validation.is_plain_limit makes them. */
static int
plain_price_and_qty(PyObject *instrument, PyObject *price_obj, PyObject *qty_obj,
                    long long *price, long long *qty)
{
    int ok = 1;
    *price = as_ll(price_obj, &ok);
    *qty = as_ll(qty_obj, &ok);
    if (!ok || *price <= 0 || *qty <= 0 || *price >= SMALL_BOUND || *qty >= SMALL_BOUND) {
        return 0;
    }
    long long tick = as_ll(SLOT(instrument, instrument_off[I_TICK_SIZE]), &ok);
    long long lot = as_ll(SLOT(instrument, instrument_off[I_LOT_SIZE]), &ok);
    if (!ok || tick <= 0 || lot <= 0 || *qty % lot || *price % tick) {
        return 0;
    }
    PyObject *low = SLOT(instrument, instrument_off[I_LOW_LIMIT_PRICE]);
    PyObject *high = SLOT(instrument, instrument_off[I_HIGH_LIMIT_PRICE]);
    if (low != Py_None) {
        long long v = as_ll(low, &ok);
        if (!ok || *price < v) {
            return 0;
        }
    }
    if (high != Py_None) {
        long long v = as_ll(high, &ok);
        if (!ok || *price > v) {
            return 0;
        }
    }
    return 1;
}

/* The book of a symbol and its instrument, when the book is in continuous trading.
 * Returns 1 with new references, 0 when the fast path does not apply, -1 on error. */
static int
continuous_book(Accel *a, PyObject *symbol, PyObject **book, PyObject **instrument)
{
    PyObject *b = book_of(a, symbol);
    if (b == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (Py_TYPE(b) != OrderBook_type || SLOT(b, book_off[B_PHASE]) != CONTINUOUS
        || SLOT(b, book_off[B_BIDS]) == NULL || SLOT(b, book_off[B_ASKS]) == NULL
        || SLOT(b, book_off[B_INSTRUMENT]) == NULL) {
        return 0;
    }
    *book = Py_NewRef(b);
    *instrument = Py_NewRef(SLOT(b, book_off[B_INSTRUMENT]));
    return 1;
}

#define NOT_TAKEN ((PyObject *)1)

/* NewOrder: a plain DAY or GTC limit order from a session that has sent orders before. */
static PyObject *
new_order(Accel *a, PyObject *cmd)
{
    PyObject *session_id = SLOT(cmd, new_off[N_SESSION_ID]);
    PyObject *cl_ord_id = SLOT(cmd, new_off[N_CL_ORD_ID]);
    PyObject *symbol = SLOT(cmd, new_off[N_SYMBOL]);
    PyObject *side = SLOT(cmd, new_off[N_SIDE]);
    PyObject *tif = SLOT(cmd, new_off[N_TIME_IN_FORCE]);
    if (SLOT(cmd, new_off[N_ORD_TYPE]) != LIMIT || (tif != DAY && tif != GTC)
        || SLOT(cmd, new_off[N_STOP_PX]) != Py_None
        || !is_false_value(SLOT(cmd, new_off[N_DISPLAY_QTY]))
        || !is_false_value(SLOT(cmd, new_off[N_MIN_QTY]))
        || !is_false_value(SLOT(cmd, new_off[N_POST_ONLY]))
        || SLOT(cmd, new_off[N_EXPIRE_TIME_US]) != Py_None
        || SLOT(cmd, new_off[N_EXPIRE_DATE]) != Py_None
        || !PyUnicode_CheckExact(session_id) || !PyUnicode_CheckExact(cl_ord_id)
        || !PyUnicode_CheckExact(symbol)) {
        return NOT_TAKEN;
    }
    IndexObject *cl_ord_ids;
    PyObject *firm;
    int known = session_of(a, session_id, &cl_ord_ids, &firm);
    if (known <= 0) {
        return known < 0 ? NULL : NOT_TAKEN;
    }
    index_prefetch(cl_ord_ids, cl_ord_id);
    PyObject *book, *instrument;
    int found = continuous_book(a, symbol, &book, &instrument);
    if (found <= 0) {
        return found < 0 ? NULL : NOT_TAKEN;
    }
    long long price, qty;
    PyObject *price_obj = SLOT(cmd, new_off[N_PRICE]);
    PyObject *qty_obj = SLOT(cmd, new_off[N_ORDER_QTY]);
    int plain = plain_price_and_qty(instrument, price_obj, qty_obj, &price, &qty);
    Py_DECREF(instrument);
    if (!plain) {
        Py_DECREF(book);
        return NOT_TAKEN;
    }

    CountersObject *c = a->counters;
    PyObject *events = NULL, *order = NULL;
    c->order_count += 1;
    PyObject *order_id = make_id(a->order_prefix, c->order_count);
    if (order_id == NULL) {
        goto error;
    }
    order = new_untracked(Order_type);
    if (order == NULL) {
        Py_DECREF(order_id);
        goto error;
    }
    PyObject *zero = PyLong_FromLong(0);
    SLOT(order, order_off[O_ORDER_ID]) = order_id;
    SLOT(order, order_off[O_SESSION_ID]) = Py_NewRef(session_id);
    SLOT(order, order_off[O_CL_ORD_ID]) = Py_NewRef(cl_ord_id);
    SLOT(order, order_off[O_SYMBOL]) = Py_NewRef(symbol);
    SLOT(order, order_off[O_SIDE]) = Py_NewRef(side);
    SLOT(order, order_off[O_ORD_TYPE]) = Py_NewRef(LIMIT);
    SLOT(order, order_off[O_TIME_IN_FORCE]) = Py_NewRef(tif);
    SLOT(order, order_off[O_PRICE]) = Py_NewRef(price_obj);
    SLOT(order, order_off[O_ORDER_QTY]) = Py_NewRef(qty_obj);
    SLOT(order, order_off[O_CUM_QTY]) = Py_NewRef(zero);
    SLOT(order, order_off[O_LEAVES_QTY]) = Py_NewRef(qty_obj);
    SLOT(order, order_off[O_VISIBLE_QTY]) = Py_NewRef(qty_obj);
    SLOT(order, order_off[O_CUM_NOTIONAL]) = Py_NewRef(zero);
    SLOT(order, order_off[O_ORD_STATUS]) = Py_NewRef(ST_NEW);
    SLOT(order, order_off[O_ACCOUNT]) = Py_NewRef(SLOT(cmd, new_off[N_ACCOUNT]));
    SLOT(order, order_off[O_SEQ]) = Py_NewRef(zero);
    SLOT(order, order_off[O_TERMS]) = Py_NewRef(Py_None);
    SLOT(order, order_off[O_FIRM]) = Py_NewRef(Py_None);
    Py_DECREF(zero);
    /* A ClOrdID (11) the session used before takes the full checks in Python; one
     * lookup both finds that out and indexes the new order. */
    PyObject *holder = index_put(cl_ord_ids, cl_ord_id, order, 1);
    if (holder == NULL) {
        goto error;
    }
    if (holder != order) {
        /* Python takes the command from the start, so it gives out this number. */
        c->order_count -= 1;
        Py_DECREF(order);
        Py_DECREF(book);
        return NOT_TAKEN;
    }
    if (PyList_Append(a->orders, order) < 0) {
        goto error;
    }
    set_slot_ref(order, order_off[O_FIRM], firm);

    events = report_list(a->exec_prefix, &c->exec_count, order, EX_NEW, Py_None);
    if (events == NULL) {
        goto error;
    }
    if (execute(a, c, order, book, side, price, events) < 0) {
        goto error;
    }
    Py_DECREF(order);
    Py_DECREF(book);
    return events;

error:
    Py_XDECREF(events);
    Py_XDECREF(order);
    Py_DECREF(book);
    return NULL;
}

/* The order this engine numbered ``order_id`` (37), borrowed, or NULL (no error set),
 * as MatchingEngine._order_by_id finds it. */
static PyObject *
order_by_id(Accel *a, PyObject *order_id)
{
    if (!PyUnicode_Check(order_id) || !PyUnicode_IS_ASCII(order_id)
        || !PyUnicode_IS_ASCII(a->order_prefix)) {
        return NULL;
    }
    Py_ssize_t plen = PyUnicode_GET_LENGTH(a->order_prefix);
    Py_ssize_t len = PyUnicode_GET_LENGTH(order_id);
    const char *text = (const char *)PyUnicode_DATA(order_id);
    if (len <= plen || len - plen > 18
        || memcmp(text, PyUnicode_DATA(a->order_prefix), plen) != 0) {
        return NULL;
    }
    long long num = 0;
    for (Py_ssize_t i = plen; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return NULL;
        }
        num = num * 10 + (text[i] - '0');
    }
    if (num < 1 || num > PyList_GET_SIZE(a->orders)) {
        return NULL;
    }
    PyObject *order = PyList_GET_ITEM(a->orders, num - 1);
    /* "O007" names no order: OrderIDs carry no leading zeros. */
    PyObject *own_id = SLOT(order, order_off[O_ORDER_ID]);
    if (PyUnicode_GET_LENGTH(own_id) != len || memcmp(PyUnicode_DATA(own_id), text, len) != 0) {
        return NULL;
    }
    return order;
}

/* The live, resting order a cancel or replace names, when every check of
 * MatchingEngine._find_for_change passes; NULL with no error set otherwise. *place
 * then gives the session's ClOrdID index and where ``cl_ord_id`` goes in it. */
static PyObject *
find_for_change(Accel *a, PyObject *session_id, PyObject *cl_ord_id, PyObject *orig_cl_ord_id,
                PyObject *order_id, PyObject *symbol, PyObject *side, IndexPlace *place)
{
    /* Exact strings only: comparing them runs no Python code that could change the
     * index or the order while they are borrowed here. */
    if (!PyUnicode_CheckExact(session_id) || !PyUnicode_CheckExact(cl_ord_id)
        || !PyUnicode_CheckExact(orig_cl_ord_id) || !PyUnicode_CheckExact(symbol)
        || (order_id != Py_None && !PyUnicode_CheckExact(order_id))) {
        return NULL;
    }
    PyObject *order;
    IndexObject *index;
    PyObject *firm;
    if (session_of(a, session_id, &index, &firm) <= 0) {
        return NULL;
    }
    /* Both lookups below miss the cache in a big index: start both loads at once. */
    index_prefetch(index, cl_ord_id);
    if (order_id == Py_None) {
        index_prefetch(index, orig_cl_ord_id);
        order = index_get(index, orig_cl_ord_id);
    }
    else {
        order = order_by_id(a, order_id);
        if (order != NULL) {
            if (!PyUnicode_CheckExact(SLOT(order, order_off[O_SESSION_ID]))) {
                return NULL;
            }
            int same = PyObject_RichCompareBool(SLOT(order, order_off[O_SESSION_ID]), session_id, Py_EQ);
            if (same <= 0) {
                return NULL;
            }
        }
    }
    if (order == NULL) {
        return NULL;
    }
    PyObject *status = SLOT(order, order_off[O_ORD_STATUS]);
    if (SLOT(order, order_off[O_SIDE]) != side
        || (status != ST_NEW && status != ST_PARTIALLY_FILLED)
        || SLOT(order, order_off[O_TERMS]) != Py_None) {
        return NULL;
    }
    if (!PyUnicode_CheckExact(SLOT(order, order_off[O_SYMBOL]))) {
        return NULL;
    }
    int same_symbol = PyObject_RichCompareBool(symbol, SLOT(order, order_off[O_SYMBOL]), Py_EQ);
    if (same_symbol <= 0) {
        return NULL;
    }
    /* The place of the new ClOrdID (11), where take_cl_ord_id indexes it. */
    if (index_locate(index, cl_ord_id, place) < 0) {
        return NULL;
    }
    if (place->slot >= 0) {
        PyObject *holder_status = SLOT(index->table[place->slot].value, order_off[O_ORD_STATUS]);
        if (holder_status == ST_NEW || holder_status == ST_PARTIALLY_FILLED) {
            return NULL;
        }
    }
    return order;
}

/* A resting order's slot in its level's queue, found by level_of, with the queue's
 * version then. unrest takes the order out there without a second probe, unless the
 * queue changed in between. */
typedef struct {
    QueueObject *queue;
    Py_ssize_t slot;
    size_t version;
} QueuePlace;

/* The level ``order`` rests in (borrowed) and its key (new reference), or NULL. NULL
 * without an error also when the level's or the order's quantities are beyond the fast
 * paths' range, so that Python takes the command before anything changed. */
static PyObject *
level_of(PyObject *side_obj, PyObject *order, PyObject **key_out, QueuePlace *place)
{
    long long sign = PyLong_AsLongLong(SLOT(side_obj, side_off[S_SIGN]));
    int ok = 1;
    long long price = as_ll(SLOT(order, order_off[O_PRICE]), &ok);
    if ((sign == -1 && PyErr_Occurred()) || !ok) {
        return NULL;
    }
    PyObject *key = level_key(order, sign, sign * price);
    if (key == NULL) {
        return NULL;
    }
    PyObject *level = PyDict_GetItemWithError(SLOT(side_obj, side_off[S_LEVELS]), key);
    if (level != NULL && Py_IS_TYPE(SLOT(level, level_off[L_ORDERS]), &Queue_type)) {
        QueueObject *q = (QueueObject *)SLOT(level, level_off[L_ORDERS]);
        place->queue = q;
        place->slot = queue_slot(q, order);
        place->version = q->version;
        int in = place->slot >= 0;
        as_ll(SLOT(level, level_off[L_TOTAL_QTY]), &ok);
        as_ll(SLOT(level, level_off[L_LEAVES_QTY]), &ok);
        as_ll(SLOT(order, order_off[O_VISIBLE_QTY]), &ok);
        as_ll(SLOT(order, order_off[O_LEAVES_QTY]), &ok);
        if (in == 1 && ok) {
            *key_out = key;
            return level;
        }
    }
    Py_DECREF(key);
    return NULL;
}

/* Take a resting order out of its level, as BookSide.remove does. */
static int
unrest(PyObject *side_obj, PyObject *order, PyObject *level, PyObject *key, const QueuePlace *place)
{
    QueueObject *q = (QueueObject *)SLOT(level, level_off[L_ORDERS]);
    if (q == place->queue && q->version == place->version) {
        Py_DECREF(queue_take(q, place->slot));
    }
    else if (level_remove((PyObject *)q, order) < 0) {
        return -1;
    }
    set_slot_ref(order, order_off[O_SEQ], s_zero);
    int ok = 1;
    long long total = as_ll(SLOT(level, level_off[L_TOTAL_QTY]), &ok);
    long long leaves = as_ll(SLOT(level, level_off[L_LEAVES_QTY]), &ok);
    long long visible = as_ll(SLOT(order, order_off[O_VISIBLE_QTY]), &ok);
    long long order_leaves = as_ll(SLOT(order, order_off[O_LEAVES_QTY]), &ok);
    if (!ok) {
        PyErr_SetString(PyExc_OverflowError, "quantity out of the fast path's range");
        return -1;
    }
    if (set_level_qty(level, total - visible, leaves - order_leaves) < 0) {
        return -1;
    }
    if (level_count(SLOT(level, level_off[L_ORDERS])) == 0) {
        return drop_level(side_obj, key, level);
    }
    return 0;
}

/* Give a live order its new ClOrdID (11) and index it under that ClOrdID in its session's
 * index, at the place find_for_change found for it. */
static int
take_cl_ord_id(PyObject *order, PyObject *cl_ord_id, IndexPlace *place)
{
    set_slot_ref(order, order_off[O_CL_ORD_ID], cl_ord_id);
    return index_put_at(place, cl_ord_id, order, 0) == NULL ? -1 : 0;
}

static PyObject *
cancel_order(Accel *a, PyObject *cmd)
{
    PyObject *cl_ord_id = SLOT(cmd, cancel_off[C_CL_ORD_ID]);
    if (!PyUnicode_CheckExact(cl_ord_id)) {
        return NOT_TAKEN;
    }
    IndexPlace place;
    PyObject *order = find_for_change(
        a, SLOT(cmd, cancel_off[C_SESSION_ID]), cl_ord_id, SLOT(cmd, cancel_off[C_ORIG_CL_ORD_ID]),
        SLOT(cmd, cancel_off[C_ORDER_ID]), SLOT(cmd, cancel_off[C_SYMBOL]),
        SLOT(cmd, cancel_off[C_SIDE]), &place);
    if (order == NULL) {
        return PyErr_Occurred() ? NULL : NOT_TAKEN;
    }
    PyObject *book = book_of(a, SLOT(order, order_off[O_SYMBOL]));
    if (book == NULL || Py_TYPE(book) != OrderBook_type || SLOT(book, book_off[B_BIDS]) == NULL
        || SLOT(book, book_off[B_ASKS]) == NULL) {
        return PyErr_Occurred() ? NULL : NOT_TAKEN;
    }
    PyObject *own, *opposite, *key = NULL;
    if (book_sides(book, SLOT(order, order_off[O_SIDE]), &own, &opposite) < 0) {
        return NULL;
    }
    Py_DECREF(opposite);
    QueuePlace in_level;
    PyObject *level = level_of(own, order, &key, &in_level);
    if (level == NULL) {
        Py_DECREF(own);
        return PyErr_Occurred() ? NULL : NOT_TAKEN;
    }
    Py_INCREF(order);
    PyObject *previous = Py_NewRef(SLOT(order, order_off[O_CL_ORD_ID]));
    PyObject *result = NULL;
    CountersObject *c = a->counters;
    if (take_cl_ord_id(order, cl_ord_id, &place) < 0
        || unrest(own, order, level, key, &in_level) < 0) {
        goto done;
    }
    PyObject *zero = PyLong_FromLong(0);
    set_slot_ref(order, order_off[O_ORD_STATUS], ST_CANCELED);
    set_slot_ref(order, order_off[O_LEAVES_QTY], zero);
    set_slot(order, order_off[O_VISIBLE_QTY], zero);
    result = report_list(a->exec_prefix, &c->exec_count, order, EX_CANCELED, previous);
done:
    Py_DECREF(previous);
    Py_DECREF(order);
    Py_DECREF(own);
    Py_DECREF(key);
    return result;
}

/* Build the event list of a replace whose OrderQty (38) is not above the order's CumQty
 * (14), the CancelReject that MatchingEngine._check_replace builds. Such a replace names
 * an order that has traded, so the fast paths meet it in every busy book. */
static PyObject *
replace_not_above_filled(PyObject *cmd, PyObject *order, long long qty, long long cum_qty)
{
    PyObject *text = PyUnicode_FromFormat(
        "OrderQty (38) %lld is not above CumQty (14) %lld", qty, cum_qty);
    if (text == NULL) {
        return NULL;
    }
    PyObject *args[8] = {
        SLOT(cmd, replace_off[R_SESSION_ID]), SLOT(cmd, replace_off[R_CL_ORD_ID]),
        SLOT(cmd, replace_off[R_ORIG_CL_ORD_ID]), SLOT(order, order_off[O_ORDER_ID]),
        SLOT(order, order_off[O_ORD_STATUS]), CXL_REPLACE, CXL_OTHER, text,
    };
    PyObject *reject = PyObject_Vectorcall(CancelReject_type, args, 8, NULL);
    Py_DECREF(text);
    return reject == NULL ? NULL : one_event_list(reject);
}

static PyObject *
replace_order(Accel *a, PyObject *cmd)
{
    PyObject *cl_ord_id = SLOT(cmd, replace_off[R_CL_ORD_ID]);
    PyObject *tif = SLOT(cmd, replace_off[R_TIME_IN_FORCE]);
    if (!PyUnicode_CheckExact(cl_ord_id) || SLOT(cmd, replace_off[R_ORD_TYPE]) != LIMIT
        || (tif != DAY && tif != GTC) || SLOT(cmd, replace_off[R_STOP_PX]) != Py_None
        || !is_zero_int(SLOT(cmd, replace_off[R_DISPLAY_QTY]))
        || SLOT(cmd, replace_off[R_EXPIRE_TIME_US]) != Py_None
        || SLOT(cmd, replace_off[R_EXPIRE_DATE]) != Py_None) {
        return NOT_TAKEN;
    }
    IndexPlace place;
    PyObject *order = find_for_change(
        a, SLOT(cmd, replace_off[R_SESSION_ID]), cl_ord_id,
        SLOT(cmd, replace_off[R_ORIG_CL_ORD_ID]), SLOT(cmd, replace_off[R_ORDER_ID]),
        SLOT(cmd, replace_off[R_SYMBOL]), SLOT(cmd, replace_off[R_SIDE]), &place);
    if (order == NULL) {
        return PyErr_Occurred() ? NULL : NOT_TAKEN;
    }
    if (SLOT(order, order_off[O_ORD_TYPE]) != LIMIT) {
        return NOT_TAKEN;
    }
    PyObject *book, *instrument;
    int found = continuous_book(a, SLOT(order, order_off[O_SYMBOL]), &book, &instrument);
    if (found <= 0) {
        return found < 0 ? NULL : NOT_TAKEN;
    }
    long long price, qty;
    PyObject *price_obj = SLOT(cmd, replace_off[R_PRICE]);
    PyObject *qty_obj = SLOT(cmd, replace_off[R_ORDER_QTY]);
    int plain = plain_price_and_qty(instrument, price_obj, qty_obj, &price, &qty);
    Py_DECREF(instrument);
    int ok = 1;
    long long cum_qty = as_ll(SLOT(order, order_off[O_CUM_QTY]), &ok);
    long long order_qty = as_ll(SLOT(order, order_off[O_ORDER_QTY]), &ok);
    long long old_price = as_ll(SLOT(order, order_off[O_PRICE]), &ok);
    long long visible = as_ll(SLOT(order, order_off[O_VISIBLE_QTY]), &ok);
    long long old_leaves = as_ll(SLOT(order, order_off[O_LEAVES_QTY]), &ok);
    if (!plain || !ok) {
        Py_DECREF(book);
        return NOT_TAKEN;
    }
    if (qty <= cum_qty) {
        Py_DECREF(book);
        return replace_not_above_filled(cmd, order, qty, cum_qty);
    }
    PyObject *side = SLOT(order, order_off[O_SIDE]);
    PyObject *own, *opposite, *key = NULL;
    if (book_sides(book, side, &own, &opposite) < 0) {
        Py_DECREF(book);
        return NULL;
    }
    Py_DECREF(opposite);
    QueuePlace in_level;
    PyObject *level = level_of(own, order, &key, &in_level);
    if (level == NULL) {
        Py_DECREF(own);
        Py_DECREF(book);
        return PyErr_Occurred() ? NULL : NOT_TAKEN;
    }

    Py_INCREF(order);
    PyObject *previous = Py_NewRef(SLOT(order, order_off[O_CL_ORD_ID]));
    PyObject *events = NULL;
    CountersObject *c = a->counters;
    if (take_cl_ord_id(order, cl_ord_id, &place) < 0) {
        goto error;
    }
    set_slot_ref(order, order_off[O_TIME_IN_FORCE], tif);
    long long leaves = qty - cum_qty;
    if (price == old_price && qty <= order_qty) {
        /* Amend down in place: time priority stays. */
        long long new_visible = visible < leaves ? visible : leaves;
        long long level_total = as_ll(SLOT(level, level_off[L_TOTAL_QTY]), &ok);
        long long level_leaves = as_ll(SLOT(level, level_off[L_LEAVES_QTY]), &ok);
        if (!ok) {
            PyErr_SetString(PyExc_OverflowError, "level total out of the fast path's range");
            goto error;
        }
        if (set_slot_ll(level, level_off[L_LEAVES_QTY], level_leaves - (old_leaves - leaves)) < 0
            || set_slot_ll(level, level_off[L_TOTAL_QTY], level_total - (visible - new_visible)) < 0) {
            goto error;
        }
        set_slot_ref(order, order_off[O_ORDER_QTY], qty_obj);
        if (set_slot_ll(order, order_off[O_LEAVES_QTY], leaves) < 0
            || set_slot_ll(order, order_off[O_VISIBLE_QTY], new_visible) < 0) {
            goto error;
        }
        events = report_list(a->exec_prefix, &c->exec_count, order, EX_REPLACED, previous);
        if (events == NULL) {
            goto error;
        }
        goto done;
    }
    /* Any other change: out of the book, then in again as an aggressor. */
    if (unrest(own, order, level, key, &in_level) < 0) {
        goto error;
    }
    set_slot_ref(order, order_off[O_PRICE], price_obj);
    set_slot_ref(order, order_off[O_ORDER_QTY], qty_obj);
    if (set_slot_ll(order, order_off[O_LEAVES_QTY], leaves) < 0) {
        goto error;
    }
    set_slot_ref(order, order_off[O_VISIBLE_QTY], SLOT(order, order_off[O_LEAVES_QTY]));
    events = report_list(a->exec_prefix, &c->exec_count, order, EX_REPLACED, previous);
    if (events == NULL) {
        goto error;
    }
    if (execute(a, c, order, book, side, price, events) < 0) {
        goto error;
    }
done:
    Py_DECREF(previous);
    Py_DECREF(order);
    Py_DECREF(own);
    Py_DECREF(key);
    Py_DECREF(book);
    return events;
error:
    Py_CLEAR(events);
    goto done;
}

static PyObject *
Accel_process(Accel *a, PyObject *cmd)
{
    PyObject *type = (PyObject *)Py_TYPE(cmd);
    PyObject *result = NOT_TAKEN;
    if (type == NewOrder_type) {
        result = new_order(a, cmd);
    }
    else if (type == CancelOrder_type) {
        result = cancel_order(a, cmd);
    }
    else if (type == ReplaceOrder_type) {
        result = replace_order(a, cmd);
    }
    if (result != NOT_TAKEN) {
        return result;
    }
    PyObject *args[2] = {a->engine, cmd};
    return PyObject_Vectorcall(a->fallback, args, 2, NULL);
}

static int
Accel_traverse(Accel *a, visitproc visit, void *arg)
{
    Py_VISIT(a->engine);
    Py_VISIT(a->counters);
    Py_VISIT(a->books);
    Py_VISIT(a->orders);
    Py_VISIT(a->by_cl_ord_id);
    Py_VISIT(a->firms);
    Py_VISIT(a->fallback);
    for (int i = 0; i < CACHE_WAYS; i++) {
        Py_VISIT(a->session_indexes[i]);
        Py_VISIT(a->session_firms[i]);
        Py_VISIT(a->symbol_books[i]);
    }
    return 0;
}

static int
Accel_clear(Accel *a)
{
    Py_CLEAR(a->engine);
    Py_CLEAR(a->counters);
    Py_CLEAR(a->books);
    Py_CLEAR(a->orders);
    Py_CLEAR(a->by_cl_ord_id);
    Py_CLEAR(a->firms);
    Py_CLEAR(a->order_prefix);
    Py_CLEAR(a->exec_prefix);
    Py_CLEAR(a->trade_prefix);
    Py_CLEAR(a->fallback);
    for (int i = 0; i < CACHE_WAYS; i++) {
        Py_CLEAR(a->session_keys[i]);
        Py_CLEAR(a->session_indexes[i]);
        Py_CLEAR(a->session_firms[i]);
        Py_CLEAR(a->symbol_keys[i]);
        Py_CLEAR(a->symbol_books[i]);
    }
    return 0;
}

static void
Accel_dealloc(Accel *a)
{
    PyObject_GC_UnTrack(a);
    Accel_clear(a);
    Py_TYPE(a)->tp_free((PyObject *)a);
}

/* engine.<name>, which must be exactly of ``type``. */
static PyObject *
get_typed_attr(PyObject *obj, const char *name, PyTypeObject *type)
{
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value != NULL && Py_TYPE(value) != type) {
        PyErr_Format(PyExc_TypeError, "engine.%s must be a %s, got %R", name, type->tp_name, value);
        Py_CLEAR(value);
    }
    return value;
}

static PyObject *
Accel_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *engine, *fallback;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "call configure() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO:Accelerator", &engine, &fallback)) {
        return NULL;
    }
    Accel *a = (Accel *)type->tp_alloc(type, 0);
    if (a == NULL) {
        return NULL;
    }
    a->engine = Py_NewRef(engine);
    a->fallback = Py_NewRef(fallback);
    a->counters = (CountersObject *)get_typed_attr(engine, "_counters", &Counters_type);
    a->books = a->counters ? get_typed_attr(engine, "_books", &PyDict_Type) : NULL;
    a->orders = a->books ? get_typed_attr(engine, "_orders", &PyList_Type) : NULL;
    a->by_cl_ord_id = a->orders ? get_typed_attr(engine, "_by_cl_ord_id", &PyDict_Type) : NULL;
    a->firms = a->by_cl_ord_id ? get_typed_attr(engine, "_firms", &PyDict_Type) : NULL;
    a->order_prefix = a->firms ? get_typed_attr(engine, "_order_prefix", &PyUnicode_Type) : NULL;
    a->exec_prefix = a->order_prefix ? get_typed_attr(engine, "_exec_prefix", &PyUnicode_Type) : NULL;
    a->trade_prefix = a->exec_prefix ? get_typed_attr(engine, "_trade_prefix", &PyUnicode_Type) : NULL;
    if (a->trade_prefix == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    return (PyObject *)a;
}

static PyMethodDef Accel_methods[] = {
    {"process", (PyCFunction)Accel_process, METH_O,
     "Carry out one command and return its events, as MatchingEngine.process does."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Accel_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._cengine.Accelerator",
    .tp_basicsize = sizeof(Accel),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Accelerator(engine, fallback): compiled fast paths of one MatchingEngine.",
    .tp_new = Accel_new,
    .tp_dealloc = (destructor)Accel_dealloc,
    .tp_traverse = (traverseproc)Accel_traverse,
    .tp_clear = (inquiry)Accel_clear,
    .tp_methods = Accel_methods,
};

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_O,
     "Give the module the engine's classes and enum members, by name, in a dict."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cengine",
    "Compiled fast paths of the matching engine; engine.engine uses them when built.",
    -1, module_methods,
};

#define INTERN(var, text) do { if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL; } while (0)

PyMODINIT_FUNC
PyInit__cengine(void)
{
    INTERN(s_match, "_match");
    INTERN(s_run_stops, "_run_stops");
    INTERN(s_cancel_remainder, "_cancel_remainder");
    INTERN(s_empty, "");
    if ((s_zero = PyLong_FromLong(0)) == NULL) {
        return NULL;
    }
    if (PyType_Ready(&Accel_type) < 0 || PyType_Ready(&Counters_type) < 0
        || PyType_Ready(&Index_type) < 0 || PyType_Ready(&Queue_type) < 0
        || PyType_Ready(&QueueIter_type) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Accelerator", (PyObject *)&Accel_type) < 0
        || PyModule_AddObjectRef(m, "Counters", (PyObject *)&Counters_type) < 0
        || PyModule_AddObjectRef(m, "ClOrdIdIndex", (PyObject *)&Index_type) < 0
        || PyModule_AddObjectRef(m, "OrderQueue", (PyObject *)&Queue_type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
