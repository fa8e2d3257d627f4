-- The example orders domain (used by the README walkthrough and the tests).
create table customers (
    id          bigint generated always as identity primary key,
    email       text not null unique,
    name        text not null,
    created_at  timestamptz not null default now()
);

create table products (
    sku         text primary key,
    title       text not null,
    price_cents integer not null check (price_cents >= 0)
);

create table orders (
    id          bigint generated always as identity primary key,
    customer_id bigint not null references customers (id),
    status      text not null default 'placed' check (status in ('placed', 'paid', 'shipped', 'cancelled')),
    placed_at   timestamptz not null default now()
);

create table order_lines (
    order_id    bigint not null references orders (id) on delete cascade,
    sku         text not null references products (sku),
    quantity    integer not null check (quantity > 0),
    primary key (order_id, sku)
);

create index orders_by_customer on orders (customer_id, placed_at desc);

create view order_totals as
select o.id as order_id, o.customer_id, o.status, sum(l.quantity * p.price_cents) as total_cents
from orders o join order_lines l on l.order_id = o.id join products p on p.sku = l.sku
group by o.id;
