// The DuckDB reference of bench/analyst_load: the same snapshot and
// point-in-time join answered with SQL window aggregates over [t - W, t).
//
//   node analyst.cjs NODE_MODULES_DIR WORK_DIR AS_OF_US
//
// Reads WORK_DIR/orders.csv, labels.csv, sample_entities.txt and
// sample_labels.txt; writes WORK_DIR/duckdb.json with timings (seconds) and
// the sample rows. With WORK_DIR/payments.csv also the 3-part training set
// of the feature service (bench and bench_b by user, merchant by merchant)
// and its sample rows (sample_service_labels.txt).
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [modules, work, asOfText] = process.argv.slice(2);
  const { DuckDBInstance } = require(path.resolve(modules, '@duckdb/node-api'));
  const T = BigInt(asOfText);
  const H = 3600n * 1000000n;
  const D = 24n * H;
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const con = await instance.connect();
  const timed = async (sql) => {
    const start = performance.now();
    await con.run(sql);
    return (performance.now() - start) / 1000;
  };

  const load = await timed(`
    CREATE TABLE orders AS SELECT * FROM read_csv('${work}/orders.csv',
      header = true, columns = {'user_id': 'VARCHAR', 't': 'BIGINT',
      'amount': 'DOUBLE', 'quantity': 'BIGINT', 'category': 'VARCHAR'});
    CREATE TABLE labels AS SELECT * FROM read_csv('${work}/labels.csv',
      header = true, columns = {'label_id': 'BIGINT', 'user_id': 'VARCHAR',
      'merchant_id': 'VARCHAR', 'ts': 'BIGINT'});`);
  const withService = fs.existsSync(path.join(work, 'payments.csv'));
  const loadPayments = withService ? await timed(`
    CREATE TABLE payments AS SELECT * FROM read_csv('${work}/payments.csv',
      header = true, columns = {'merchant_id': 'VARCHAR', 't': 'BIGINT',
      'amount': 'DOUBLE'});`) : 0;

  // Snapshot: every entity with an event before T, as of T.
  const snapshot = await timed(`
    CREATE TEMP TABLE snap AS
    SELECT user_id,
      count(*) FILTER (WHERE t >= ${T - H}) AS orders_1h,
      coalesce(sum(amount) FILTER (WHERE t >= ${T - D}), 0) AS spend_1d,
      avg(amount) FILTER (WHERE t >= ${T - 7n * D}) AS avg_7d,
      coalesce(sum(quantity) FILTER (WHERE t >= ${T - 7n * D}), 0) AS items_7d,
      max(amount) FILTER (WHERE t >= ${T - 30n * D}) AS max_30d,
      count(DISTINCT category) FILTER (WHERE t >= ${T - 30n * D})
        AS categories_30d,
      count(*) AS orders_life,
      arg_max(category, t) AS last_category
    FROM orders WHERE t < ${T} GROUP BY user_id`);

  // Point-in-time join: labels and events on one timeline per entity;
  // each label's frame is [ts - W, ts - 1us] = [ts - W, ts).
  const frame = (w, key = 'user_id') => `OVER (PARTITION BY ${key} ` +
      `ORDER BY t RANGE BETWEEN ${w} PRECEDING AND 1 PRECEDING)`;
  // Labels and orders on one timeline per user, and the bench view's
  // features over it (named with `p` before each).
  const userTimeline = `
    SELECT user_id, t, amount, quantity, category, NULL::BIGINT AS label_id
    FROM orders
    UNION ALL
    SELECT user_id, ts, NULL, NULL, NULL, label_id FROM labels`;
  const benchFeatures = (p) => `
        count(amount) ${frame(H)} AS ${p}orders_1h,
        coalesce(sum(amount) ${frame(D)}, 0) AS ${p}spend_1d,
        avg(amount) ${frame(7n * D)} AS ${p}avg_7d,
        coalesce(sum(quantity) ${frame(7n * D)}, 0) AS ${p}items_7d,
        max(amount) ${frame(30n * D)} AS ${p}max_30d,
        count(DISTINCT category) ${frame(30n * D)} AS ${p}categories_30d,
        count(amount) ${frame('UNBOUNDED')} AS ${p}orders_life,
        last_value(category IGNORE NULLS) ${frame('UNBOUNDED')}
          AS ${p}last_category`;
  const join = await timed(`
    CREATE TEMP TABLE joined AS
    WITH u AS (${userTimeline}),
    w AS (SELECT label_id, ${benchFeatures('')} FROM u)
    SELECT * FROM w WHERE label_id IS NOT NULL`);

  // The service's training set: the user timeline gives the bench and
  // bench_b parts in one pass, the merchant timeline the merchant part;
  // joined by label.
  const m = (w) => frame(w, 'merchant_id');
  const service = withService ? await timed(`
    CREATE TEMP TABLE training AS
    WITH u AS (${userTimeline}),
    wu AS (
      SELECT * FROM (SELECT label_id, ${benchFeatures('u_')},
        count(amount) ${frame(D)} AS b_orders_1d,
        coalesce(sum(amount) ${frame(30n * D)}, 0) AS b_spend_30d,
        min(amount) ${frame(7n * D)} AS b_min_amount_7d,
        avg(quantity) ${frame(30n * D)} AS b_avg_quantity_30d,
        max(quantity) ${frame(D)} AS b_max_quantity_1d
      FROM u) WHERE label_id IS NOT NULL),
    p AS (
      SELECT merchant_id, t, amount, NULL::BIGINT AS label_id FROM payments
      UNION ALL
      SELECT merchant_id, ts, NULL, label_id FROM labels),
    wm AS (
      SELECT * FROM (SELECT label_id,
        count(amount) ${m(H)} AS m_pay_1h,
        coalesce(sum(amount) ${m(D)}, 0) AS m_pay_sum_1d,
        avg(amount) ${m(7n * D)} AS m_pay_avg_7d,
        max(amount) ${m(30n * D)} AS m_pay_max_30d,
        count(amount) ${m('UNBOUNDED')} AS m_pay_life
      FROM p) WHERE label_id IS NOT NULL)
    SELECT * FROM wu JOIN wm USING (label_id)`) : 0;

  const list = (file) => fs.readFileSync(path.join(work, file), 'utf8')
      .split('\n').filter((s) => s.length > 0);
  const quoted = list('sample_entities.txt').map((e) => `'${e}'`).join(',');
  const snapRows = await (await con.runAndReadAll(
      `SELECT * FROM snap WHERE user_id IN (${quoted})`)).getRowObjectsJson();
  const joinRows = await (await con.runAndReadAll(
      `SELECT * FROM joined WHERE label_id IN (${list('sample_labels.txt')})`))
      .getRowObjectsJson();
  const count = async (table) => Number((await (await con.runAndReadAll(
      `SELECT count(*) AS n FROM ${table}`)).getRowObjectsJson())[0].n);
  const serviceRows = withService ? await (await con.runAndReadAll(
      `SELECT * FROM training WHERE label_id IN ` +
      `(${list('sample_service_labels.txt')})`)).getRowObjectsJson() : [];
  fs.writeFileSync(path.join(work, 'duckdb.json'), JSON.stringify({
    load: load + loadPayments, snapshot, join, service,
    service_rows: withService ? await count('training') : 0,
    service_sample: serviceRows,
    snapshot_rows: await count('snap'), join_rows: await count('joined'),
    snapshot_sample: snapRows, join_sample: joinRows,
  }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
