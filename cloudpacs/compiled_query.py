"""Statements whose SQL Django compiles once per database, not on every request.

Django builds and compiles a queryset's SQL each time it is evaluated. For a look-up by a
key or two that costs about as long as PostgreSQL takes to answer it (0.5-1.5 ms here), and
some look-ups run on every request: the clinic membership of a session, the instance of a
viewer's frame request (a viewer makes hundreds a minute). Such a look-up is written once
as an ordinary `values_list` queryset with `Slot`s where its values go; it is compiled on
first use for each database (not per connection: Django makes one per thread, and the DICOM
gateway a thread per association), then run with each call's values, its rows converted as
Django's compiler converts them (so SQLite's dates, JSON and booleans come back as the ORM
gives them).

Writes made on every instance ingested (its row, its outbox row, the counters of its
series and study) are compiled once the same way: `CompiledInsert` and `CompiledUpdate`.
"""

from collections.abc import Callable, Iterable
from functools import cached_property

import psycopg
from django.db import DatabaseError, connections, models, transaction
from django.db.models import Expression
from django.db.models.constants import OnConflict
from django.db.models.sql import UpdateQuery
from django.db.transaction import TransactionManagementError
from psycopg.adapt import Transformer
from psycopg.pq import ExecStatus, TransactionStatus


class Slot(Expression):
    """A place for a value given at each run. Compiles to the backend's placeholder with
    itself as the parameter, which `CompiledQuery` replaces by the value, prepared for the
    database by `output_field` as the ORM prepares a look-up's value."""

    def __init__(self, name: str, output_field: models.Field):
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler, connection):
        return "%s", [self]

    def __repr__(self):
        return f"Slot({self.name!r})"


# Compiled SQL by (statement, database alias): the same for every connection to a database.
# It holds no connection: a thread's connection (Django makes one per thread; the DICOM
# gateway runs each association in a thread of its own) goes when its thread does.
_statements: dict = {}


def _compiled(key, connection, make):
    full_key = (key, connection.alias)
    if (compiled := _statements.get(full_key)) is None:
        compiled = _statements[full_key] = make()
    return compiled


def _arguments(params, values: dict, connection) -> list:
    return [p.output_field.get_db_prep_value(values[p.name], connection) if isinstance(p, Slot) else p
            for p in params]


class CompiledQuery:
    """`build()` returns a values_list queryset whose varying values are `Slot`s;
    `rows(**values)` runs it with those values and returns its converted rows."""

    def __init__(self, build: Callable[[], models.QuerySet], using: str = "default"):
        self._build = build
        self._using = using

    def _compile(self, connection):
        queryset = self._build()
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        if compiler.has_extra_select:  # the rows would not line up with the values_list names
            raise ValueError("a compiled query selects its values_list columns only")
        # The selected expressions (columns), not the compiler: it points at its connection.
        return (sql, tuple(params), tuple(s[0] for s in compiler.select[: compiler.col_count]),
                bool(queryset.query.select_for_update))

    def _converters(self, connection, columns) -> list:
        """The converters Django's compiler would apply to each column (as
        SQLCompiler.get_converters finds them), for this connection. Found once per
        connection (about 40 µs for an instance's columns) and kept on the connection
        object, as they point at it: they go together when its thread ends."""
        kept = connection.__dict__.setdefault("_cloudpacs_converters", {})
        if (found := kept.get(self)) is None:
            found = kept[self] = [
                (position, functions, column) for position, column in enumerate(columns)
                if (functions := connection.ops.get_db_converters(column) + column.get_db_converters(connection))]
        return found

    def rows(self, **values) -> list[tuple]:
        connection = connections[self._using]
        sql, params, columns, locking = _compiled(self, connection, lambda: self._compile(connection))
        if locking and connection.get_autocommit():
            # Django checks this when it compiles, which here is once: a lock taken outside a
            # transaction would be let go at once.
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with connection.cursor() as cursor, transaction.mark_for_rollback_on_error(self._using):
            cursor.execute(sql, _arguments(params, values, connection))
            rows = cursor.fetchall()
        return self.converted(rows)

    def statement(self, **values) -> tuple[str, list]:
        """The query's SQL and parameters, for a caller that sends it with other statements
        in one round trip (`send_together`) and gives its rows to `converted`. A lock it
        takes is the caller's transaction's: the caller has begun one."""
        connection = connections[self._using]

        def compile_in_a_transaction():
            # Django will not compile a lock outside one; nothing is sent to the database.
            with transaction.atomic(using=self._using):
                return self._compile(connection)

        sql, params, _, _ = _compiled(self, connection, compile_in_a_transaction)
        return sql, _arguments(params, values, connection)

    def converted(self, rows: list) -> list[tuple]:
        """Rows as fetched, converted as Django's compiler converts them."""
        connection = connections[self._using]
        _, _, columns, _ = _compiled(self, connection, lambda: self._compile(connection))
        converters = self._converters(connection, columns)
        if converters and rows:
            rows = [list(row) for row in rows]
            for row in rows:
                for position, functions, column in converters:
                    for function in functions:
                        row[position] = function(row[position], column, connection)
        return [tuple(row) for row in rows]


class CompiledUpdate:
    """`build()` returns `(queryset, changes)`: the rows to change and `QuerySet.update`'s
    keyword arguments, both with `Slot`s where values go (`F("n") + Slot("added", ...)`).
    `run(**values)` updates with those values and returns how many rows changed."""

    def __init__(self, build: Callable[[], tuple[models.QuerySet, dict]], using: str = "default"):
        self._build = build
        self._using = using

    def _compile(self, connection):
        queryset, changes = self._build()
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(changes)
        sql, params = query.get_compiler(connection=connection).as_sql()
        if not sql:
            raise ValueError("a compiled update changes at least one field")
        return sql, tuple(params)

    def run(self, **values) -> int:
        connection = connections[self._using]
        sql, params = _compiled(self, connection, lambda: self._compile(connection))
        # As QuerySet.update: a failed statement marks the transaction around it for rollback.
        with connection.cursor() as cursor, transaction.mark_for_rollback_on_error(self._using):
            cursor.execute(sql, _arguments(params, values, connection))
            return cursor.rowcount


def binds_on_client(connection) -> bool:
    """Whether `connection` (open) is PostgreSQL's with psycopg's client-side binding,
    Django's default: the values are written into the statement's text before it is sent,
    so one call can carry several statements, and a text can be sent as it is. Server-side
    binding (the OPTIONS' server_side_binding) and SQLite do neither."""
    return connection.vendor == "postgresql" and issubclass(connection.connection.cursor_factory, psycopg.ClientCursor)


# psycopg splits a statement's text at its placeholders on every run, and keeps the split
# only for statements of at most this many parameters (its MAX_CACHED_STATEMENT_PARAMS).
_PSYCOPG_SPLITS_KEPT_UP_TO = 50


def _execute(connection, cursor, sql: str, template: bytes, params: list) -> None:
    """Run an INSERT of many rows. With client-side binding, the values are written into
    the statement's template (made once) here, as psycopg writes them (the connection's
    adapters), and the text is sent as it is: psycopg would split it again at every run
    (100 outbox rows: 7.4 ms of CPU, 3.9 this way). Otherwise as any statement."""
    if len(params) <= _PSYCOPG_SPLITS_KEPT_UP_TO or not binds_on_client(connection):
        cursor.execute(sql, params)
        return
    cursor.execute(_with_values(connection, cursor, template, params))


def _with_values(connection, cursor, template: bytes, params: list) -> bytes:
    """`template` with `params` written in as psycopg writes them (the connection's
    adapters). Sent without parameters, psycopg sends it as it is: a "%" inside a value
    stays. A value psycopg refuses (a NUL) fails as Django's errors do."""
    literal = Transformer.from_context(cursor.cursor).as_literal
    with connection.wrap_database_errors:
        return template % tuple(b"NULL" if p is None else literal(p) for p in params)


def _template(sql: str) -> bytes:
    """The statement as a bytes %-format: its placeholders are its only "%" (the SQL of a
    model's INSERT: quoted table and column names, no literal)."""
    if sql.count("%") != sql.count("%s"):
        raise ValueError("a compiled insert's SQL has a '%' that is not a placeholder")
    return sql.encode()


class CompiledInsert:
    """INSERT of new `model` rows, as `bulk_create` makes them (each field's `pre_save` and
    `get_db_prep_save`; the new primary keys set on the objects), its statement made once
    per row count. For writes made with every instance ingested, where compiling
    bulk_create's statement costs more than running it. No signals, as bulk_create.

    `ignore_conflicts` and `update_conflicts=(unique_fields, update_fields)` are
    bulk_create's: with the first no primary keys are set (a row left out has none).
    With `keyed` the caller gives each row its key, taken from the table's sequence first
    (`keys_statement`), so that a row referring to it can be written in the same round trip
    (archive/ingest/new_study.py); its statement returns nothing, or, if it also ignores
    conflicts, the key of a row that went in (none for one left out)."""

    SIZES_KEPT = 64  # statements kept, one per row count (a STOW-RS body's size varies)
    MAX_PARAMETERS = 65535  # PostgreSQL's protocol limit for one statement (Django sets none)

    def __init__(self, model: type[models.Model], using: str = "default", *, ignore_conflicts: bool = False,
                 update_conflicts: tuple[list[str], list[str]] | None = None, keyed: bool = False):
        self.model = model
        self._keyed = keyed
        self._using = using
        self._statements: dict[tuple, tuple[str, bytes]] = {}
        self._ignore = ignore_conflicts
        self._update = update_conflicts

    @cached_property
    def fields(self) -> tuple:
        return tuple(f for f in self.model._meta.concrete_fields if self._keyed or not f.primary_key)

    def _sql(self, connection, rows: int, returning: tuple[str, ...] = ()) -> str:
        return self._statement(connection, rows, returning)[0]

    def _statement(self, connection, rows: int, returning: tuple[str, ...] = ()) -> tuple[str, bytes]:
        """The SQL for `rows` rows, and its template for `_execute`."""
        key = (connection.vendor, rows, returning)
        if (made := self._statements.get(key)) is None:
            if len(self._statements) >= self.SIZES_KEPT:
                self._statements.clear()
            sql = self._make_sql(connection, rows, returning)
            made = self._statements[key] = (sql, _template(sql))
        return made

    def _make_sql(self, connection, rows: int, returning: tuple[str, ...] = ()) -> str:
        """`returning`: fields given back beside the key, by rows the insert made (with
        ignore_conflicts, which otherwise gives back nothing)."""
        ops, meta = connection.ops, self.model._meta
        on_conflict = OnConflict.IGNORE if self._ignore else OnConflict.UPDATE if self._update else None
        unique, update = ([meta.get_field(name).column for name in names] for names in self._update or ([], []))
        row = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        sql = (f"{ops.insert_statement(on_conflict=on_conflict)} {ops.quote_name(meta.db_table)} "
               f"({', '.join(ops.quote_name(f.column) for f in self.fields)}) VALUES {', '.join([row] * rows)}")
        if suffix := ops.on_conflict_suffix_sql(self.fields, on_conflict, update, unique):
            sql += f" {suffix}"
        if (self._ignore or self._keyed) and not (self._ignore and self._keyed) and not returning:
            return sql
        columns = [meta.pk.column, *(meta.get_field(name).column for name in returning)]
        return f"{sql} RETURNING {', '.join(ops.quote_name(column) for column in columns)}"

    def rows_per_statement(self, connection, objs: list) -> int:
        return max(1, min(connection.ops.bulk_batch_size(self.fields, objs) or len(objs),
                          self.MAX_PARAMETERS // len(self.fields)))

    def _new_rows_only(self, objs: list[models.Model]) -> None:
        if self._keyed:
            if any(obj.pk is None for obj in objs):
                raise ValueError(f"a keyed insert writes {self.model.__name__} rows with the keys they were given")
            return
        if any(obj.pk is not None for obj in objs):
            raise ValueError(f"a compiled insert makes new {self.model.__name__} rows: their keys are the database's")

    def insert(self, objs: list[models.Model]) -> list[models.Model]:
        if self._keyed:
            raise ValueError("a keyed insert is sent by its caller: statement()")
        self._new_rows_only(objs)
        connection = connections[self._using]
        size = self.rows_per_statement(connection, objs)
        # As bulk_create: the statements (more than one for many rows) all go in, or none.
        with transaction.atomic(using=self._using, savepoint=False):
            for start in range(0, len(objs), size):
                self._insert_batch(connection, objs[start:start + size])
        return objs

    def insert_new(self, objs: list[models.Model], by: tuple[str, ...]) -> list[models.Model]:
        """With `ignore_conflicts`: insert `objs` and give back those the database made, their
        keys set, told apart by the fields `by` (the unique constraint's that a row left out
        conflicted on); the caller reads the others."""
        if not self._ignore:
            raise ValueError("insert_new: for an insert that ignores conflicts")
        self._new_rows_only(objs)
        connection = connections[self._using]
        size = self.rows_per_statement(connection, objs)
        made: dict[tuple, int] = {}
        # As bulk_create: the statements (more than one for many rows) all go in, or none.
        with transaction.atomic(using=self._using, savepoint=False):
            for start in range(0, len(objs), size):
                batch = objs[start:start + size]
                with connection.cursor() as cursor:
                    _execute(connection, cursor, *self._statement(connection, len(batch), by), self._params(connection, batch))
                    made.update({tuple(row[1:]): row[0] for row in cursor.fetchall()})
        attnames = [self.model._meta.get_field(name).attname for name in by]
        keyed = [(obj, made.get(tuple(getattr(obj, a) for a in attnames))) for obj in objs]
        inserted = [obj for obj, pk in keyed if pk is not None]
        self.set_keys(inserted, [(pk,) for _, pk in keyed if pk is not None])
        return inserted

    def statement(self, objs: list[models.Model]) -> tuple[str, list]:
        """The one INSERT of `objs` (SQL and parameters), for a caller that sends it along
        with other statements in one round trip; `set_keys(objs, rows)` then gives the
        objects the keys its RETURNING answered."""
        connection = connections[self._using]
        self._new_rows_only(objs)
        if (self._ignore and not self._keyed) or len(objs) > self.rows_per_statement(connection, objs):
            raise ValueError("one statement, returning a key for every row")
        return self._sql(connection, len(objs)), self._params(connection, objs)

    def set_keys(self, objs: list[models.Model], rows=None) -> None:
        """The keys the statement's RETURNING answered (`rows`), or, keyed, those given."""
        if rows is None and self._keyed:
            rows = [(obj.pk,) for obj in objs]
        alias = connections[self._using].alias
        for obj, (pk,) in zip(objs, rows, strict=True):
            obj.pk = pk
            obj._state.adding, obj._state.db = False, alias

    def _params(self, connection, batch: list[models.Model]) -> list:
        params = []
        for obj in batch:
            obj._prepare_related_fields_for_save(operation_name="bulk_create")
            params += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in self.fields]
        return params

    def _insert_batch(self, connection, batch: list[models.Model]) -> None:
        with connection.cursor() as cursor:
            _execute(connection, cursor, *self._statement(connection, len(batch)), self._params(connection, batch))
            if self._ignore:  # a row left out has no key to give back
                return
            self.set_keys(batch, cursor.fetchall())


def keys_statement(*tables: type[models.Model]) -> tuple[str, list]:
    """One new key from each model's table's sequence (PostgreSQL), as one row: the keys of
    rows a `keyed` CompiledInsert writes. A key taken and not used is a gap, nothing else."""
    nextval = ", ".join(["nextval(pg_get_serial_sequence(%s, %s))"] * len(tables))
    return f"SELECT {nextval}", [v for model in tables for v in (model._meta.db_table, model._meta.pk.column)]


def send_together(connection, statements: list[tuple[str, list]]) -> list[list | None]:
    """Run `statements` (SQL and parameters each, one statement each) in one round trip
    (`binds_on_client(connection)` must hold): the rows of each, or None for one that
    answers none. The values are written into the text here, as psycopg writes them, and
    the text sent as it is (psycopg would split a text of many values again at every run:
    see `_execute`). A failing statement raises; the ones after it do not run."""
    sql = "; ".join(statement for statement, _ in statements)
    params = [value for _, values in statements for value in values]
    with connection.cursor() as cursor:
        cursor.execute(_with_values(connection, cursor, _template(sql), params))
        # Each answer read from psycopg's cursor itself: its `description` makes a column
        # object per column, which Django's wrapper asked for every answer.
        answers, raw = [], cursor.cursor
        while True:
            answers.append(raw.fetchall() if raw.pgresult.status == ExecStatus.TUPLES_OK else None)
            if not raw.nextset():
                return answers


def rolled_back(connection) -> None:
    """After statements sent with their own BEGIN and COMMIT failed: a failed statement
    skips those after it, the COMMIT too, so the transaction, if one is open, is rolled
    back and the connection left as found. Quietly: the caller has its error to raise."""
    if connection.connection is None or connection.connection.info.transaction_status == TransactionStatus.IDLE:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except DatabaseError:
        pass


def fields_in_order(model: type[models.Model], names: Iterable[str] | None = None) -> list[str]:
    """`model`'s concrete fields' attribute names (all, or those in `names`) in the order
    `Model.from_db` takes values. A name that is no such attribute is an error (left out, the
    field would be loaded by a query of its own on first access)."""
    attnames = [f.attname for f in model._meta.concrete_fields]
    if names is None:
        return attnames
    wanted = set(names)
    if unknown := wanted - set(attnames):
        raise ValueError(f"not attribute names of {model.__name__}'s fields: {sorted(unknown)}")
    return [name for name in attnames if name in wanted]


def related_fields(relation: str, model: type[models.Model]) -> list[str]:
    """The values_list names of every concrete field of `model` reached through `relation`
    (a select_related done by hand: `related_fields("tenant", Tenant)`)."""
    return [f"{relation}__{name}" for name in fields_in_order(model)]


def models_from_row(row, *parts: tuple[type[models.Model], list[str]], using: str = "default"):
    """Model instances from consecutive slices of one row, one per (model, attnames) in
    `parts` (attnames as `fields_in_order` gives them; fields not among them are deferred,
    loaded on first access as the ORM does), followed by the row's remaining values."""
    out, start = [], 0
    for model, attnames in parts:
        out.append(model.from_db(using, attnames, row[start:start + len(attnames)]))
        start += len(attnames)
    return (*out, *row[start:])
