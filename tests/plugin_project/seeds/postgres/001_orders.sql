create table orders (id int primary key, item text not null);
insert into orders values (1, 'book'), (2, 'lamp'), (3, 'tea');
