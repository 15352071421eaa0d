"""The mysql kind's pure parts: the DSN, the option file, argv, the tables read from
a dump as it streams, the client's errors."""

from __future__ import annotations

import os
import random
import stat
import sys
from pathlib import Path

import pytest

from backupctl.errors import RegistryError
from backupctl.kinds.mysql import MysqlKind, TableTee
from backupctl.kinds.mysqlclient import (
    MysqlDsn,
    OptionFile,
    client_argv,
    client_failure,
    dsn_secrets,
    dump_argv,
    literal,
    option_file,
    option_file_text,
    parse_dsn,
)
from backupctl.registry import App, load_registry

SECRET = "pw:/#@? x"


def test_a_dsn_is_percent_decoded_and_keeps_its_password_out_of_repr() -> None:
    dsn = parse_dsn("mysql://sh%40p:pw%3A%2F%23%40%3F%20x@db.internal:3307/shop%2Dlive")
    assert dsn == MysqlDsn("shop-live", "sh@p", SECRET, "db.internal", 3307)
    assert SECRET not in repr(dsn)
    assert parse_dsn(dsn.url()) == dsn  # and back


def test_a_dsn_may_name_a_socket_an_ipv6_host_or_nothing_but_the_database() -> None:
    assert parse_dsn("mysql://backup@/shop?socket=/run/mysqld/mysqld.sock") == MysqlDsn(
        "shop", "backup", None, None, None, "/run/mysqld/mysqld.sock"
    )
    assert parse_dsn("mysql://localhost/shop?socket=/s").host is None
    assert parse_dsn("mariadb://u:p@[::1]:3310/shop").host == "::1"
    assert parse_dsn("mysql:///shop") == MysqlDsn("shop")
    assert parse_dsn("mysql://u:@h/db").password == ""  # an empty password is one
    assert parse_dsn("mysql://h:1/", database_required=False).database == ""


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        (f"postgresql://u:{SECRET}@h/db", "must be a mysql:// URL"),
        ("mysql://u:pw@h/", "names no database"),
        ("mysql://u:pw@h:port/db", "is not a valid MySQL DSN"),
        ("mysql://u:pw@h/db?ssl-mode=REQUIRED", "unknown parameter 'ssl-mode' (known: socket)"),
        ("mysql://u:pw@h:3306/db?socket=/s", "give a host and port, or ?socket=, not both"),
        ("mysql://u:pw@/db?socket=run/s", "socket must be an absolute path"),
        ("mysql://u:pw@h/a/b", "must be one name"),
        ("mysql://u:pw%00@h/db", "the password must not contain a NUL character"),
        ("mysql://u:pw@h/db#x", "must not have a #fragment"),
    ],
)
def test_a_bad_dsn_says_what_is_wrong_without_its_password(dsn: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_dsn(dsn)
    assert says in str(caught.value)
    assert "pw" not in str(caught.value).replace("password", "")


def test_the_secrets_of_a_dsn_are_the_dsn_and_its_decoded_password() -> None:
    assert dsn_secrets("mysql://u:a%20b@h/db") == ["mysql://u:a%20b@h/db", "a b"]
    assert dsn_secrets("mysql://u@h/db") == ["mysql://u@h/db"]
    assert dsn_secrets("not a dsn") == ["not a dsn"]


def test_the_option_file_quotes_every_value_so_comments_blanks_and_quotes_survive() -> None:
    dsn = MysqlDsn("shop", 'a "b"', " #x\\y\n", "db.internal", None)
    assert option_file_text(dsn) == (
        "[client]\n"
        'user="a \\"b\\""\n'
        'password=" #x\\\\y\\n"\n'
        'host="db.internal"\n'
        "port=3306\n"
        "protocol=tcp\n"
        "[mysql]\n"
        "connect-timeout=10\n"
        "[mariadb-client]\n"
        "skip-print-query-on-error\n"
    )


def test_a_socket_dsn_connects_through_the_socket_and_a_bare_one_leaves_the_defaults() -> None:
    text = option_file_text(MysqlDsn("shop", socket="/run/m.sock"))
    assert 'socket="/run/m.sock"\nprotocol=socket\n' in text
    assert "host" not in text and "user" not in text and "password" not in text
    bare = option_file_text(MysqlDsn("shop"))
    assert bare.startswith("[client]\n[mysql]\n")


def test_the_option_file_is_0600_and_in_no_folder_and_closed_after_its_block() -> None:
    with option_file(MysqlDsn("shop", "u", "s3cret", "h", 1)) as options:
        st = os.fstat(options.fd)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert os.pread(options.fd, 4096, 0).startswith(b"[client]\nuser=")
        assert os.lseek(options.fd, 0, os.SEEK_CUR) == 0  # read from its start
        assert not os.get_inheritable(options.fd)  # only a child it is passed to has it
        if sys.platform.startswith("linux"):
            where = os.readlink(f"/proc/self/fd/{options.fd}")
            assert where.startswith("/memfd:") or where.endswith("(deleted)")
        fd = options.fd
    with pytest.raises(OSError):
        os.fstat(fd)


def test_the_dump_argv_starts_with_the_option_file_and_ends_with_the_database() -> None:
    argv = dump_argv("/usr/bin/mariadb-dump", OptionFile(7), "-odd")
    assert argv == [
        "/usr/bin/mariadb-dump",
        "--defaults-extra-file=/dev/fd/7",
        "--single-transaction",
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--default-character-set=utf8mb4",
        "--no-tablespaces",
        "--",
        "-odd",  # a name, not an option: it follows --
    ]
    client = client_argv("mariadb", OptionFile(5), "shop")
    assert client[1] == "--defaults-extra-file=/dev/fd/5" and client[-2:] == ["--", "shop"]
    assert "--" not in client_argv("mariadb", OptionFile(5))


def test_a_literal_needs_no_escaping_whatever_the_sql_mode() -> None:
    assert literal("a'b\\") == "_utf8mb4 X'6127625c'"
    assert literal("") == "''"


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes, /) -> int:
        self.data += data
        return len(data)


DUMP = b"""/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
DROP TABLE IF EXISTS `audit`;
CREATE TABLE `audit` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;
INSERT INTO `audit` VALUES
(1),
(2);
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER t AFTER INSERT ON audit FOR EACH ROW BEGIN
CREATE TABLE `not_a_table` (
 id int);
END */;;
DELIMITER ;
/*!50001 CREATE VIEW `v` AS SELECT
 NULL AS `id` */;
CREATE SEQUENCE `s` start with 1;
CREATE TABLE `we``ird t\xc3\xa4ble` (
  `b` blob
);
INSERT INTO `we``ird t\xc3\xa4ble` VALUES
('CREATE TABLE `in_data` (\\nx');
DELIMITER ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()
CREATE TABLE `in_a_routine` (
 id int)
;;
DELIMITER ;
-- Dump completed on 2026-11-28 02:00:00
"""


def test_the_tables_of_a_dump_are_read_as_it_streams_in_any_chunks() -> None:
    rng = random.Random(11)
    for _ in range(200):
        sink = _Sink()
        tee = TableTee(sink)
        at = 0
        while at < len(DUMP):
            size = rng.choice([1, 2, 3, 5, 17, 64, 4096])
            assert tee.write(DUMP[at : at + size]) == len(DUMP[at : at + size])
            at += size
        assert bytes(sink.data) == DUMP
        assert tee.tables == ["audit", "we`ird täble"]


def test_the_client_error_is_one_redacted_line_with_its_mysql_error_number() -> None:
    failed = client_failure(
        "mariadb",
        1,
        "ERROR 1045 (28000): Access denied for user 'shop'@'10.0.0.5' (using password: YES)\n"
        "and s3cret-pw\n",
        ["s3cret-pw"],
    )
    assert str(failed) == (
        "mariadb exited with status 1: ERROR 1045 (28000): Access denied for user "
        "'shop'@'10.0.0.5' (with a password) | and ***"
    )
    assert failed.code == 1045 and not failed.unreachable
    dump = client_failure(
        "mariadb-dump",
        2,
        "mariadb-dump: Got error: 2002: \"Can't connect to server on 'h' (115)\" when trying",
        [],
    )
    assert dump.code == 2002 and dump.unreachable
    assert str(client_failure("mysql", -9, "", [])) == "mysql was killed by signal 9"


def test_a_statement_the_client_echoes_is_left_out_of_its_error() -> None:
    echoed = (
        "--------------\nINSERT INTO `t` VALUES (1,'private'),\n(2,'data')\n--------------\n\n"
        "ERROR 1142 (42000) at line 40: INSERT command denied to user 'r'@'h' for table `t`\n"
    )
    failed = client_failure("mariadb", 1, echoed, [])
    assert "private" not in str(failed) and failed.code == 1142
    assert str(failed).endswith("at line 40: INSERT command denied to user 'r'@'h' for table `t`")


def test_the_registry_checks_a_mysql_dsn_without_showing_it(tmp_path: Path) -> None:
    registry = tmp_path / "apps.toml"
    registry.write_text(
        '[[app]]\nid = "crm"\nkind = "mysql"\ndsn = "mysql://u:Secret-pw@db:port/crm"\n\n'
        '[[app]]\nid = "shop"\nkind = "mysql"\ndsn = "mysql://u:pw@db/"\ndsn_env = "X"\n\n'
        '[[app]]\nid = "ok"\nkind = "mysql"\ndsn_env = "OK_MYSQL"\nallow_empty = true\n'
    )
    with pytest.raises(RegistryError) as caught:
        load_registry(str(registry))
    assert caught.value.problems == [
        f"{registry}:1: app 'crm': dsn: is not a valid MySQL DSN (mysql://user:password@"
        "host:3306/db, or mysql://user@/db?socket=/run/mysqld/mysqld.sock)",
        f"{registry}:6: app 'shop': dsn: names no database: add it as the path (mysql://"
        "user:password@host:3306/db, or mysql://user@/db?socket=/run/mysqld/mysqld.sock)",
        f"{registry}:6: app 'shop': give exactly one of dsn, dsn_env",
    ]
    registry.write_text('[[app]]\nid = "ok"\nkind = "mysql"\ndsn_env = "OK_MYSQL"\n')
    [app] = load_registry(str(registry))
    assert app.params == {"dsn_env": "OK_MYSQL"}


def test_the_secrets_of_an_app_are_its_dsn_and_password_and_none_without_a_dsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind = MysqlKind()
    given = App("crm", "mysql", {"dsn": "mysql://u:s%40cret@db/crm"})
    assert kind.secrets(given) == ["mysql://u:s%40cret@db/crm", "s@cret"]
    monkeypatch.delenv("CRM_MYSQL", raising=False)
    assert kind.secrets(App("crm", "mysql", {"dsn_env": "CRM_MYSQL"})) == []
    assert kind.extension == "sql" and set(kind.fields.fields) == {"dsn", "dsn_env"}
